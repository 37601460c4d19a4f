"""The issue's "done when": the official openai client, pointed at `ladder serve`, gets
cascaded answers from real llama.cpp servers (llama-cpp-python's, one per embedded model,
on loopback, started by `ladder serve --upstream llamacpp`) — the README's third block, as
a test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("llama_cpp")
from openai import OpenAI

from ladder.demo import MODELS
from live import ladder_serve

pytestmark = pytest.mark.slow
KEY = "sk-gateway-llamacpp-test"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ladder-home")
    with ladder_serve(None, "--upstream", "llamacpp", home=home, timeout_s=240,
                      env={"LADDER_API_KEYS": KEY}) as (url, _):
        yield url


def test_openai_client_gets_cascaded_answers(gateway: str) -> None:
    client = OpenAI(base_url=f"{gateway}/v1", api_key=KEY)
    assert {m.id for m in client.models.list()} >= {"ladder-balanced", "ladder-online", *MODELS}
    seen = set()
    for question in ("What is the capital of France?", "Which planet is closest to the Sun?",
                     "What is the largest ocean on Earth?"):
        response = client.chat.completions.create(
            model="ladder", messages=[{"role": "user", "content": question}])
        ladder = response.model_extra["ladder"]
        stages = ladder["stages"]
        assert ladder["policy"] == "ladder-balanced"
        assert [s["model"] for s in stages] == list(MODELS[: len(stages)])
        assert stages[-1]["decision"] == "stop" and response.model in MODELS
        assert all(0 <= s["predicted_quality"] <= 1 for s in stages)
        assert response.choices[0].message.content.strip()
        seen.add(len(stages))
        # feedback on a real answer is acknowledged
        ack = httpx.post(f"{gateway}/v1/feedback", json={"id": response.id, "quality": 1},
                         headers={"Authorization": f"Bearer {KEY}"})
        assert ack.status_code == 200 and ack.json()["recorded"]
    assert seen, "no answers"


def test_streams_and_passthrough_from_the_real_servers(gateway: str) -> None:
    client = OpenAI(base_url=f"{gateway}/v1", api_key=KEY)
    whole = client.chat.completions.create(
        model="ladder-online", messages=[{"role": "user", "content": "What is 2 + 2?"}])
    stream = client.chat.completions.create(
        model="ladder-online", stream=True,
        messages=[{"role": "user", "content": "What is 2 + 2?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # greedy: the same answer streamed
    direct = client.completions.create(model=MODELS[0], prompt="The capital of Italy is",
                                       max_tokens=8)
    assert direct.model == MODELS[0] and direct.choices[0].text
    assert direct.usage.completion_tokens >= 1
    with pytest.raises(Exception) as refused:
        OpenAI(base_url=f"{gateway}/v1", api_key="sk-wrong").models.list()
    assert getattr(refused.value, "status_code", None) == 401
