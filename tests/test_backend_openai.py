"""OpenAIBackend against httpx.MockTransport: payloads, parsing, offsets, errors, retries."""

from __future__ import annotations

import asyncio
import json
import math
import re

import httpx
import pytest

from ladder.backends.base import BackendError
from ladder.backends.openai import OpenAIBackend
from ladder.tasks import Item

BASE = "http://127.0.0.1:8080/v1"
SECRET = "sk-test-SECRET-123"


def make(handler, **kwargs) -> OpenAIBackend:
    backend = OpenAIBackend(BASE + "/", "tiny", transport=httpx.MockTransport(handler), **kwargs)
    backend.retry_base_s = 0.0
    return backend


def run(backend: OpenAIBackend, coro):
    async def go():
        try:
            return await coro
        finally:
            await backend.aclose()
    return asyncio.run(go())


def completion(text: str, logprobs: list[float | None] | None, usage: bool = True) -> dict:
    choice: dict = {"text": text, "index": 0}
    choice["logprobs"] = None if logprobs is None else {"token_logprobs": logprobs}
    data: dict = {"choices": [choice]}
    if usage:
        data["usage"] = {"prompt_tokens": 5, "completion_tokens": 2}
    return data


def echo_handler(word_logprobs: dict[str, float], seen: list[dict] | None = None):
    """A /completions server that echoes: whitespace-led word tokens plus one generated token."""
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        text = body["prompt"]
        matches = list(re.finditer(r"\s*\S+", text))
        tokens = [m.group() for m in matches] + ["!"]
        offsets = [m.start() for m in matches] + [len(text)]
        values = [None] + [word_logprobs.get(t.strip(), -9.0) for t in tokens[1:]]
        logprobs = {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}
        return httpx.Response(200, json={
            "choices": [{"text": text + "!", "logprobs": logprobs}],
            "usage": {"prompt_tokens": len(matches), "completion_tokens": 1},
        })
    return handler


def test_completions_generate_payload_and_parsing():
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=completion(" Paris", [-0.1, -0.2]))

    backend = make(handler)
    out = run(backend, backend.generate("Capital of France?", max_tokens=8, stop=("\n", ".")))
    assert str(seen[0].url) == BASE + "/completions"
    body = json.loads(seen[0].content)
    assert body == {"model": "tiny", "prompt": "Capital of France?", "max_tokens": 8,
                    "temperature": 0, "stop": ["\n", "."], "logprobs": 1}
    assert "authorization" not in seen[0].headers
    assert out.text == " Paris"
    assert out.token_logprobs == (-0.1, -0.2)
    assert (out.usage.tokens_in, out.usage.tokens_out) == (5, 2)
    assert out.usage.latency_s >= 0


def test_generate_without_logprobs_or_usage():
    backend = make(lambda r: httpx.Response(200, json=completion("x", None, usage=False)),
                   logprobs=False)
    out = run(backend, backend.generate("q"))
    assert out.token_logprobs is None
    assert (out.usage.tokens_in, out.usage.tokens_out) == (0, 0)

    backend = make(lambda r: httpx.Response(200, json=completion("x", [-1.0, -2.0, -3.0],
                                                                  usage=False)))
    assert run(backend, backend.generate("q")).usage.tokens_out == 3


def test_chat_generate_payload_and_parsing():
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={
            "choices": [{"message": {"role": "assistant", "content": "Paris"},
                         "logprobs": {"content": [{"token": "Par", "logprob": -0.3},
                                                  {"token": "is", "logprob": -0.01}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2},
        })

    backend = make(handler, endpoint="chat")
    assert backend.scores_options is False
    out = run(backend, backend.generate("Capital of France?"))
    assert str(seen[0].url) == BASE + "/chat/completions"
    body = json.loads(seen[0].content)
    assert body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert body["logprobs"] is True and body["model"] == "tiny" and body["stop"] == ["\n"]
    assert body["temperature"] == 0 and "prompt" not in body
    assert out.text == "Paris" and out.token_logprobs == (-0.3, -0.01)
    assert (out.usage.tokens_in, out.usage.tokens_out) == (12, 2)


def test_bad_endpoint_names_choices():
    with pytest.raises(ValueError, match="completions, chat"):
        OpenAIBackend(BASE, "tiny", endpoint="embeddings")


def test_option_tokens_selected_by_offsets():
    prompt = "Answer:"
    option = "Paris Texas"
    full = prompt + " " + option

    def handler(request):
        body = json.loads(request.content)
        assert body["prompt"] == full
        assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1
        assert body["temperature"] == 0 and body["model"] == "tiny"
        # ":" ends exactly at the prompt's end, " Paris" spans the separator, "!" is generated
        logprobs = {"tokens": ["Answer", ":", " Paris", " Texas", "!"],
                    "token_logprobs": [None, -1.0, -2.0, -3.0, -4.0],
                    "text_offset": [0, 6, 7, 13, len(full)]}
        return httpx.Response(200, json={"choices": [{"text": full + "!", "logprobs": logprobs}],
                                         "usage": {"prompt_tokens": 4}})

    backend = make(handler)
    scores = run(backend, backend.score_options(prompt, [option]))
    assert scores.token_logprobs == ((-2.0, -3.0),)
    assert (scores.usage.tokens_in, scores.usage.tokens_out) == (4, 0)


def test_token_spanning_prompt_boundary_counts_for_option():
    def handler(request):
        assert json.loads(request.content)["prompt"] == "Q= Bar"
        # "= B" starts inside the prompt and ends inside the option; offsets are omitted
        logprobs = {"tokens": ["Q", "= B", "ar", "!"], "token_logprobs": [None, -1.5, -0.5, -7.0]}
        return httpx.Response(200, json={"choices": [{"logprobs": logprobs}]})

    backend = make(handler)
    scores = run(backend, backend.score_options("Q=", ["Bar"]))
    assert scores.token_logprobs == ((-1.5, -0.5),)
    assert scores.usage.tokens_in == 3  # counted from echoed tokens when usage is absent


def test_separator_rules():
    seen: list[dict] = []
    backend = make(echo_handler({}, seen))
    run(backend, backend.score_options("Answer: ", ["a"]))
    backend = make(echo_handler({}, seen))
    run(backend, backend.score_options("Answer:", [" b"]))
    assert [b["prompt"] for b in seen] == ["Answer: a", "Answer: b"]


def test_score_options_requires_echo():
    def handler(request):
        body = json.loads(request.content)
        logprobs = {"tokens": ["!"], "token_logprobs": [-0.2], "text_offset": [len(body["prompt"])]}
        return httpx.Response(200, json={"choices": [{"text": "!", "logprobs": logprobs}]})

    backend = make(handler)
    with pytest.raises(BackendError, match="echo"):
        run(backend, backend.score_options("Answer:", ["a", "b"]))


def test_all_null_option_logprobs_is_an_error():
    def handler(request):
        logprobs = {"tokens": ["x"], "token_logprobs": [None], "text_offset": [0]}
        return httpx.Response(200, json={"choices": [{"logprobs": logprobs}]})

    backend = make(handler)
    with pytest.raises(BackendError, match="no log-probabilities"):
        run(backend, backend.score_options("", ["x"]))


def test_chat_refuses_score_options():
    backend = make(lambda r: httpx.Response(500), endpoint="chat")
    with pytest.raises(BackendError, match="endpoint 'completions'"):
        run(backend, backend.score_options("q", ["a", "b"]))


def test_answer_picks_most_likely_option():
    seen: list[dict] = []
    backend = make(echo_handler({"a": -2.0, "b": -0.1}, seen))
    item = Item(id="q1", prompt="Pick one.", type="choice", options=("a", "b"), reference="a")
    out = run(backend, backend.answer(item))
    assert out.answer == "b"
    assert out.confidence == pytest.approx(1 / (1 + math.exp(-1.9)))
    assert out.logprob_mean == pytest.approx(-0.1)
    assert out.tokens_in == sum(len(b["prompt"].split()) for b in seen)
    assert sorted(b["prompt"] for b in seen) == ["Question: Pick one.\nAnswer: a",
                                                 "Question: Pick one.\nAnswer: b"]


def test_api_key_sent_and_never_shown(monkeypatch):
    monkeypatch.setenv("LADDER_TEST_KEY", SECRET)
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return httpx.Response(401, text=f"invalid key {SECRET}")

    backend = make(handler, api_key_env="LADDER_TEST_KEY")
    with pytest.raises(BackendError) as caught:
        run(backend, backend.generate("q"))
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    message = str(caught.value)
    assert SECRET not in message and "401" in message and "/completions" in message
    assert "tiny" in message
    assert SECRET not in repr(backend) and SECRET not in str(backend)


def test_missing_key_variable(monkeypatch):
    monkeypatch.delenv("LADDER_ABSENT_KEY", raising=False)
    with pytest.raises(BackendError, match="LADDER_ABSENT_KEY"):
        OpenAIBackend(BASE, "tiny", api_key_env="LADDER_ABSENT_KEY")
    monkeypatch.setenv("LADDER_ABSENT_KEY", "")
    with pytest.raises(BackendError, match="LADDER_ABSENT_KEY"):
        OpenAIBackend(BASE, "tiny", api_key_env="LADDER_ABSENT_KEY")


def test_timeout_is_backend_error():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    backend = make(handler)
    with pytest.raises(BackendError, match="timed out"):
        run(backend, backend.generate("q"))


def test_connection_error_retried_then_reported():
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    backend = make(handler, max_retries=1)
    with pytest.raises(BackendError, match=r"cannot reach 127\.0\.0\.1"):
        run(backend, backend.generate("q"))
    assert len(calls) == 2


def test_retry_on_503_then_success():
    answers = [httpx.Response(503, text="busy"), httpx.Response(429, text="slow down"),
               httpx.Response(200, json=completion("ok", [-0.5]))]

    backend = make(lambda r: answers.pop(0))
    assert run(backend, backend.generate("q")).text == "ok"
    assert answers == []


def test_no_retry_beyond_max_retries():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, text="x" * 500)

    backend = make(handler, max_retries=2)
    with pytest.raises(BackendError, match="HTTP 503") as caught:
        run(backend, backend.generate("q"))
    assert len(calls) == 3
    assert "x" * 200 in str(caught.value) and "x" * 201 not in str(caught.value)


def test_client_error_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(404, text="no such model")

    backend = make(handler)
    with pytest.raises(BackendError, match="no such model"):
        run(backend, backend.generate("q"))
    assert len(calls) == 1


def test_logprobs_unsupported_fallback():
    bodies: list[dict] = []

    def handler(request):
        body = json.loads(request.content)
        bodies.append(body)
        if "logprobs" in body:
            return httpx.Response(400, json={"error": "logprobs is not supported"})
        return httpx.Response(200, json=completion("ok", None))

    backend = make(handler)

    async def twice():
        return [await backend.generate("q"), await backend.generate("q")]

    first, second = run(backend, twice())
    assert first.text == second.text == "ok" and first.token_logprobs is None
    assert ["logprobs" in b for b in bodies] == [True, False, False]


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="not json"),
    httpx.Response(200, json={"choices": []}),
    httpx.Response(200, json={"nothing": 1}),
    httpx.Response(200, json=[1, 2]),
])
def test_malformed_answers(answer):
    backend = make(lambda r: answer)
    with pytest.raises(BackendError, match="tiny: POST /completions"):
        run(backend, backend.generate("q"))


def test_backend_survives_successive_event_loops():
    """Sync callers run each call in a fresh `asyncio.run`; a client opened on a closed loop
    must not be reused."""
    backend = make(lambda r: httpx.Response(200, json=completion(" Paris", [-0.1])))
    assert asyncio.run(backend.generate("q")).text == " Paris"
    assert asyncio.run(backend.generate("q")).text == " Paris"
    run(backend, backend.generate("q"))
