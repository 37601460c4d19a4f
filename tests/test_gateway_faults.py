"""Faults through the whole gateway over real HTTP: `openai` models behind it point at the
fake upstream (loopback), the gateway itself runs on uvicorn. Failed rungs escalate and are
recorded, streams fall back before their first byte and end with an error event after it,
breakers open and recover, clients that leave cancel their backend calls, a stream holds
its concurrency slot until it ends, and the backend key is never seen anywhere."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ladder.backends.breaker import CircuitBreaker
from ladder.config import load_config
from ladder.server.app import create_app
from ladder.testing.fake_openai import FakeOpenAI, serve

SECRET = "sk-upstream-SECRET-7"
KEY_ENV = "LADDER_TEST_UPSTREAM_KEY"
TRUTHS = {"capital of France": "Paris", "Tell a story": "once upon a time a ladder of models "
          "climbed only as far as it needed to"}
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
FAILURES, COOLDOWN_S = 3, 0.5


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    app = FakeOpenAI(TRUTHS, skill=1.0, models=("a", "b", "c"))
    with serve(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory) -> Iterator[tuple[httpx.Client, object, Path]]:
    """The gateway over models a, b, c (in that order) and a cascade `climb` over a → b."""
    folder = tmp_path_factory.mktemp("faults")
    model = {"backend": "openai", "base_url": upstream[1], "api_key_env": KEY_ENV,
             "timeout_s": 1.0, "max_retries": 0,
             "breaker": {"failures": FAILURES, "cooldown_s": COOLDOWN_S}}
    config = {"models": [{**model, "name": n, "model": n} for n in "abc"],
              "task": {"type": "short"},
              "server": {"database": "sqlite:///faults.db", "request_timeout_s": 30,
                         "policies": [{"name": "climb", "online": {
                             "chain": ["a", "b"], "lambda": 0.0, "exploration": 0.0}}]}}
    (folder / "ladder.yaml").write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, SECRET)
    app = create_app(load_config(folder / "ladder.yaml"))
    try:
        with serve(app, lifespan="on") as url, httpx.Client(
                base_url=url.removesuffix("/v1"), timeout=10) as client:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, client.get("/readyz").text
                time.sleep(0.05)
            yield client, app.state.gateway, folder
    finally:
        mp.undo()


@pytest.fixture
def fake(upstream, gateway) -> FakeOpenAI:
    """The upstream with no faults and fresh stats; every breaker closed."""
    app = upstream[0]
    app.reset()
    app.latency_s = app.chunk_delay_s = 0.0
    for rung in gateway[1].rungs.values():
        rung.breaker = CircuitBreaker(FAILURES, COOLDOWN_S)
    return app


def clean(response: httpx.Response) -> httpx.Response:
    assert SECRET not in response.text and SECRET not in str(response.headers)
    return response


def events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def stored(folder: Path, rid: str, timeout_s: float = 5.0) -> tuple[tuple, list[tuple]]:
    """The request row and its stage rows, once the batched writer has committed them."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(folder / "faults.db") as db:
            row = db.execute("select status, error, model from requests where id = ?",
                             (rid,)).fetchone()
            stages = db.execute("select model, decision, error from stages where "
                                "request_id = ? order by stage", (rid,)).fetchall()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, f"{rid} never stored"
            return row, stages
        time.sleep(0.02)


@pytest.mark.parametrize("fault", ["500", "hang", "malformed"])
def test_a_failed_first_rung_escalates_and_is_recorded(gateway, fake, fault):
    client, _, folder = gateway
    fake.faults["a"] = fault
    fake.hang_s = 5.0
    began = time.monotonic()
    response = clean(client.post("/v1/chat/completions", json={"model": "climb",
                                                                "messages": CHAT}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "b" and body["choices"][0]["message"]["content"].strip() == "Paris"
    first, last = body["ladder"]["stages"]
    assert (first["model"], first["decision"]) == ("a", "failed") and first["error"]
    assert (last["model"], last["decision"]) == ("b", "stop")
    if fault == "hang":
        assert time.monotonic() - began < 3  # a's timeout_s (1 s), not the hang
    _, stages = stored(folder, body["id"])
    assert stages[0][:2] == ("a", "failed") and stages[0][2] == first["error"]
    assert stages[1][:2] == ("b", "stop")


@pytest.mark.parametrize("fault", ["500", "drop-start"])
def test_a_stream_falls_back_before_its_first_byte(gateway, fake, fault):
    client, _, folder = gateway
    fake.faults["a"] = fault
    with client.stream("POST", "/v1/chat/completions", json={
            "model": "a", "messages": CHAT, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["x-ladder-stage"] == "1"
        data = events(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["model"] == "b" and "error" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Paris"
    row, stages = stored(folder, chunks[0]["id"])
    assert row == (200, None, "b")
    assert [s[:2] for s in stages] == [("a", "failed"), ("b", "stop")]


def test_a_stream_broken_after_its_first_byte_ends_with_an_error_event(gateway, fake):
    client, _, folder = gateway
    fake.faults["a"] = "drop"
    with client.stream("POST", "/v1/completions", json={
            "model": "a", "prompt": "What is the capital of France?",
            "stream": True}) as response:
        assert response.status_code == 200
        data = events(response)
    assert "[DONE]" not in data
    first, last = json.loads(data[0]), json.loads(data[-1])
    assert first["choices"][0]["text"] and first["model"] == "a"
    assert last["error"]["type"] == "server_error" and SECRET not in last["error"]["message"]
    row, stages = stored(folder, first["id"])
    assert row[0] == 200 and row[1] and stages == [("a", "failed", row[1])]


def test_the_breaker_opens_stops_calling_and_recovers(gateway, fake):
    client, _, _ = gateway
    fake.faults["c"] = "500"  # c is the last model: nothing to fall back to
    ask = {"model": "c", "messages": CHAT}
    for _ in range(FAILURES):
        assert clean(client.post("/v1/chat/completions", json=ask)).status_code == 503
    assert client.get("/readyz").json()["breakers"]["c"] == "open"
    calls = fake.stats.calls
    refused = clean(client.post("/v1/chat/completions", json=ask))
    assert refused.status_code == 503 and fake.stats.calls == calls  # not even tried
    fake.faults.clear()
    time.sleep(COOLDOWN_S + 0.1)
    assert client.post("/v1/chat/completions", json=ask).status_code == 200
    assert client.get("/readyz").json()["breakers"]["c"] == "closed"


@pytest.mark.parametrize(("model", "stream"), [("a", False), ("a", True), ("climb", False),
                                               ("climb", True)])
def test_every_model_failing_is_a_503_with_retry_after(gateway, fake, model, stream):
    client, _, _ = gateway
    fake.faults.update({"a": "500", "b": "503", "c": "500"})
    response = clean(client.post("/v1/chat/completions", json={
        "model": model, "messages": CHAT, "stream": stream}))
    assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert error["type"] == "service_unavailable" and "every model failed" in error["message"]


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_client_that_leaves_cancels_its_backend_call(gateway, fake):
    client, state, _ = gateway
    fake.latency_s = 3.0
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json={"model": "a", "messages": CHAT},
                    timeout=0.3)
    assert wait_for(lambda: fake.stats.disconnects == 1)  # the gateway hung up upstream
    assert wait_for(lambda: state.in_flight == 0)


def test_a_streaming_client_that_leaves_cancels_the_stream(gateway, fake):
    client, state, folder = gateway
    fake.chunk_delay_s = 0.5
    prompt = {"model": "a", "prompt": "Tell a story", "max_tokens": 50, "stream": True}
    with client.stream("POST", "/v1/completions", json=prompt) as response:
        lines = response.iter_lines()
        first = next(lines)
        time.sleep(0.2)
        assert state.in_flight == 1  # the stream holds its slot while it runs
    # leaving the block closes the connection after the first chunk
    rid = json.loads(first[6:])["id"]
    assert wait_for(lambda: fake.stats.disconnects == 1)
    assert wait_for(lambda: state.in_flight == 0)
    row, stages = stored(folder, rid)
    assert row[0] == 499 and row[1] == "client disconnected" and len(stages) == 1


def test_client_parameters_reach_the_upstream(gateway, fake):
    client, _, _ = gateway
    client.post("/v1/chat/completions", json={"model": "a", "messages": CHAT, "max_tokens": 7,
                                              "stop": ["\n", "END"], "temperature": 0.3})
    client.post("/v1/completions", json={"model": "b", "prompt": ["Say hi"],
                                         "max_completion_tokens": 5, "stop": "X",
                                         "temperature": 1.5, "stream": True})
    chat, completion = list(fake.stats.bodies)
    assert (chat["model"], chat["max_tokens"], chat["stop"], chat["temperature"]) == (
        "a", 7, ["\n", "END"], 0.3)
    assert (completion["model"], completion["prompt"], completion["max_tokens"],
            completion["stop"], completion["temperature"]) == ("b", "Say hi", 5, ["X"], 1.5)


def test_the_upstream_key_is_never_seen(gateway, fake, caplog):
    """The fake echoes the Authorization header in its error bodies, as careless servers
    do; the key must reach no response, stored row or log line."""
    client, _, folder = gateway
    caplog.set_level(logging.DEBUG)
    for fault in ("500", "503", "malformed", "drop", "drop-start"):
        fake.faults.update({"a": fault, "b": fault, "c": fault})
        for stream in (False, True):
            clean(client.post("/v1/chat/completions", json={
                "model": "a", "messages": CHAT, "stream": stream}))
            clean(client.post("/v1/completions", json={
                "model": "climb", "prompt": "capital of France?", "stream": stream}))
        for rung in gateway[1].rungs.values():
            rung.breaker = CircuitBreaker(FAILURES, COOLDOWN_S)
    assert fake.stats.faults["500"] > 0  # the faults did reach the upstream
    gateway[1].store.flush()
    assert not [r for r in caplog.records if SECRET in r.getMessage()]
    assert SECRET.encode() not in b"".join(
        p.read_bytes() for p in folder.glob("faults.db*"))
    assert SECRET not in clean(client.get("/metrics")).text
