"""The official `openai` client against `ladder serve` (a child process on loopback) over
the fake models: cascaded and pass-through answers, streams, the `ladder` report, and
OpenAI's exception classes for the gateway's errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import yaml

from gateway_setup import gateway_config
from live import ladder_serve

KEY = "sk-client-test-1"
ASK = [{"role": "user", "content": "What is 3 + 3?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[openai.OpenAI]:
    config = gateway_config(tmp_path_factory.mktemp("client"), api_keys=[KEY],
                            max_concurrency=1)
    raw = yaml.safe_load(config.read_text())
    raw["models"][1]["latency_s"] = 0.5  # big is slow: a call to it holds the one slot
    config.write_text(yaml.safe_dump(raw))
    with ladder_serve(config) as (url, _):
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def test_chat_through_a_cascade_carries_the_ladder_report(client):
    response = client.chat.completions.create(model="balanced", messages=ASK)
    assert response.object == "chat.completion" and response.choices[0].message.content
    ladder = response.model_extra["ladder"]
    assert ladder["policy"] == "balanced" and ladder["stages"][-1]["decision"] == "stop"
    assert response.model == ladder["stages"][-1]["model"]
    assert response.to_dict()["ladder"] == ladder
    assert response.usage.total_tokens > 0


def test_a_streamed_chat_concatenates_to_the_answer(client):
    whole = client.chat.completions.create(model="big", messages=ASK)
    stream = client.chat.completions.create(model="big", messages=ASK, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "n6"
    assert chunks[-1].usage.total_tokens > 0


def test_completions_and_models(client):
    completion = client.completions.create(model="small", prompt="What is 3 + 3?",
                                           max_tokens=8)
    assert completion.object == "text_completion" and completion.model == "small"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="ladder", prompt="What is 3 + 3?", stream=True) if c.choices)
    assert streamed
    assert [m.id for m in client.models.list()] == ["balanced", "learner", "small", "big"]


def test_errors_map_to_openai_exceptions(client):
    wrong = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="small", messages=ASK)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=ASK)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=ASK, n=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=[])


def test_a_request_over_the_limit_is_a_rate_limit_error(client):
    """max_concurrency is 1: while a call to the slow model runs, another gets 429."""
    slow = threading.Thread(target=client.chat.completions.create,
                            kwargs={"model": "big", "messages": ASK})
    slow.start()
    try:
        time.sleep(0.2)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="small", messages=ASK)
    finally:
        slow.join()
    assert int(limited.value.response.headers["retry-after"]) > 0
    assert client.chat.completions.create(model="small", messages=ASK).choices


def test_two_workers_share_the_port_the_database_and_the_metrics(tmp_path):
    config = gateway_config(tmp_path, api_keys=[KEY])
    with ladder_serve(config, "--workers", "2") as (url, _):
        fresh = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))  # the kernel
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=5,  # spreads
                               http_client=fresh)  # connections; retries a worker's 503
        # while it still fits its policies (/readyz answered for the other one)
        replicas, ids = set(), []
        for _ in range(200):
            raw = client.chat.completions.with_raw_response.create(model="balanced",
                                                                   messages=ASK)
            replicas.add(raw.headers["x-ladder-replica"])
            ids.append(raw.parse().id)
            if len(replicas) == 2:
                break
        assert len(replicas) == 2  # both worker processes answered on the one port
        served = len(ids)
        metrics = httpx.get(f"{url}/metrics").text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith('ladder_requests_total{model='))
        assert total == served  # every worker's count, whichever worker scraped
    rows = sqlite3.connect(tmp_path / "gateway.db").execute(
        "select count(distinct replica), count(*) from requests").fetchone()
    assert rows == (2, served)
