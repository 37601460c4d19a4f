"""Faults over real HTTP (loopback, the fake upstream): retries, failed stages escalate,
timeouts, malformed answers, broken streams, the circuit breaker, cancellation, request
parameters, and keys kept out of messages."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
import pytest

from ladder.backends.base import BackendError, GenerationParams, StreamBroken, TextStream
from ladder.backends.breaker import CircuitBreaker, CircuitOpen
from ladder.backends.openai import OpenAIBackend
from ladder.config import Price
from ladder.policies.stages import ChainPolicy, StageDecision
from ladder.rung import Rung
from ladder.runtime import Cascade, CascadeFailed
from ladder.tasks import Item
from ladder.testing.fake_openai import FakeOpenAI, serve

SECRET = "sk-fault-SECRET-42"
TRUTHS = {"capital of France": "the city of Paris", "largest planet": "Jupiter"}
ITEM = Item("q1", "What is the capital of France?", "short", reference="the city of Paris")
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def upstream():
    app = FakeOpenAI(TRUTHS, skill=1.0, models=("small", "large"))
    with serve(app) as url:
        yield app, url


@pytest.fixture
def app(upstream) -> FakeOpenAI:
    app = upstream[0]
    app.reset()
    app.latency_s = app.chunk_delay_s = 0.0
    app.fail_first = 0
    return app


@pytest.fixture
def url(upstream, app) -> str:
    return upstream[1]


def backend(url: str, model: str, **options) -> OpenAIBackend:
    options.setdefault("timeout_s", 2.0)
    made = OpenAIBackend(url, model, **options)
    made.retry_base_s = 0.0
    return made


def rung(url: str, model: str, breaker: CircuitBreaker | None = None, **options) -> Rung:
    return Rung(model, backend(url, model, **options), Price(input_per_mtok=1.0),
                breaker=breaker or CircuitBreaker(100, 30.0))


class Climb(ChainPolicy):
    """A stand-in policy: stops after `stop_at` (a fitted one is exercised below), returns
    the stage it stops at, or `returned` when given."""

    def __init__(self, chain: tuple[str, ...], stop_at: int, returned: int | None = None):
        self.chain_, self.inputs_ = chain, ("answers",)
        self.stop_at, self.returned = stop_at, returned

    def step(self, table, stage, earlier_scores=None) -> StageDecision:
        scores = np.hstack([earlier_scores, [[0.5]]])
        back = stage if self.returned is None else self.returned
        return StageDecision(np.array([stage >= self.stop_at]), scores, None, np.array([back]))


def cascade(url: str, stop_at: int = 0, returned: int | None = None, **options) -> Cascade:
    rungs = {m: rung(url, m, **options) for m in ("small", "large")}
    return Cascade(rungs, Climb(("small", "large"), stop_at, returned))


def run(coroutine_fn: Callable[[], Awaitable]):
    return asyncio.run(coroutine_fn())


def calls(app: FakeOpenAI, model: str) -> int:
    return sum(1 for body in app.stats.bodies if body.get("model") == model)


async def until(condition: Callable[[], bool], limit_s: float = 3.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_5xx_retried_then_succeeds(app, url) -> None:
    app.fail_first = 2
    made = backend(url, "small", max_retries=2)
    generation = run(lambda: made.generate("What is the capital of France?"))
    assert generation.text == "the city of Paris"
    assert app.stats.calls == 3 and app.stats.faults["500"] == 2


def test_persistent_5xx_fails_the_stage_and_escalates(app, url) -> None:
    app.faults["small"] = "503"
    with cascade(url, stop_at=0, max_retries=1) as live:
        result = live.decode(ITEM)
    assert result.model == "large" and result.stage == 1 and result.quality == 1.0
    failed, answered = result.trace
    assert failed.decision == "failed" and "HTTP 503" in failed.error
    assert all(np.isnan(v) for v in failed.signals.values()) and failed.cost == 0.0
    assert answered.decision == "stop" and answered.tokens_in > 0
    assert result.failures == (failed.error,) and failed.error.startswith("small: ")
    assert calls(app, "small") == 2  # tried, retried once, given up


def test_fitted_policy_climbs_past_a_failed_stage(app, url, tmp_path) -> None:
    """A real fitted cascade reads a failed stage's NaN signals (imputed) and goes on."""
    from ladder.backends.fake import FakeBackend
    from ladder.collect import collect
    from ladder.fit import fit_policy
    from ladder.runlog import QueryTable, load_runlog

    items = [Item(f"q{k}", f"question {k}?", "short", reference=f"a{k}") for k in range(40)]
    truths = {i.prompt: str(i.reference) for i in items}
    offline = {"small": Rung("small", FakeBackend(truths, 0.5, 1), Price(input_per_mtok=1)),
               "large": Rung("large", FakeBackend(truths, 0.95, 2), Price(input_per_mtok=9))}
    collect(items, offline, tmp_path / "log.jsonl")
    table = QueryTable.from_runlog(load_runlog(tmp_path / "log.jsonl"))
    policy = fit_policy(table, "threshold", 0.0, chain=["small", "large"])
    app.faults["small"] = "500"
    rungs = {m: rung(url, m, max_retries=0) for m in ("small", "large")}
    with Cascade(rungs, policy) as live:
        result = live.decode(ITEM)
    assert [t.decision for t in result.trace] == ["failed", "stop"]
    assert result.model == "large" and result.quality == 1.0


def test_last_stage_failing_returns_the_best_answer_so_far(app, url) -> None:
    app.faults["large"] = "500"
    with cascade(url, stop_at=1, max_retries=0) as live:
        result = live.decode(ITEM)  # the policy climbs; the top rung fails
        assert result.model == "small" and result.stage == 1
        assert [t.decision for t in result.trace] == ["escalate", "failed"]
        app.faults["small"] = "500"
        with pytest.raises(CascadeFailed, match=r"small: .*HTTP 500.*; large: .*500") as caught:
            live.decode(ITEM)
    assert len(caught.value.failures) == 2


def test_hang_times_out_unretried_and_escalates(app, url) -> None:
    app.faults["small"] = "hang"
    with cascade(url, stop_at=0, timeout_s=0.3, max_retries=3) as live:
        began = time.perf_counter()
        result = live.decode(ITEM)
        took = time.perf_counter() - began
    assert result.model == "large"
    assert "timed out after 0.3 s" in result.failures[0]
    assert calls(app, "small") == 1 and took < 1.5


def test_malformed_answer_is_a_clear_error_and_escalates(app, url) -> None:
    app.faults["small"] = "malformed"
    with cascade(url, stop_at=0) as live:
        result = live.decode(ITEM)
    assert result.model == "large"
    assert "non-JSON-object answer" in result.failures[0]

    async def stream() -> None:
        made = backend(url, "large")
        async with made.stream_chat(CHAT) as deltas:
            [d async for d in deltas]

    app.faults["large"] = "malformed"
    with pytest.raises(BackendError, match="malformed stream chunk") as caught:
        run(stream)
    assert not isinstance(caught.value, StreamBroken)


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_stream_deltas_and_usage(app, url, endpoint) -> None:
    made = backend(url, "small", endpoint=endpoint)

    async def go():
        stream = made.stream_chat(CHAT, GenerationParams(max_tokens=10))
        return [d async for d in stream], stream.usage

    deltas, usage = run(go)
    assert deltas == ["the", " city", " of", " Paris"]
    assert usage.tokens_out == 4 and usage.tokens_in > 0
    body = app.stats.bodies[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert ("messages" in body) == (endpoint == "chat")


def test_stream_dropped_before_or_after_the_first_delta(app, url) -> None:
    made = backend(url, "small", max_retries=1)
    got: list[str] = []

    async def stream() -> None:
        async for delta in made.stream_complete("What is the capital of France?"):
            got.append(delta)

    app.faults["small"] = "drop-start"
    with pytest.raises(BackendError, match="stream broke") as caught:
        run(stream)
    assert not isinstance(caught.value, StreamBroken) and got == []
    app.faults["small"] = "drop"
    with pytest.raises(StreamBroken, match="stream broke"):
        run(stream)
    assert got == ["the"]


def test_breaker_opens_then_half_opens_after_the_cooldown(app, url) -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    small = rung(url, "small", breaker, max_retries=0)
    app.faults["small"] = "503"

    async def attempts(n: int) -> list[BaseException | None]:
        out: list[BaseException | None] = []
        for _ in range(n):
            try:
                await small.run(ITEM)
                out.append(None)
            except BackendError as error:
                out.append(error)
        return out

    errors = run(lambda: attempts(3))
    assert app.stats.calls == 2 and breaker.state == "open"
    assert isinstance(errors[2], CircuitOpen)
    assert str(errors[2]) == "small: circuit open for 10 s after 2 failures"
    with pytest.raises(CircuitOpen):
        run(lambda: _first(small.stream_chat(CHAT)))  # refused before any request
    assert app.stats.calls == 2
    now[0] = 10.0
    assert breaker.state == "half-open"
    run(lambda: attempts(1))  # the trial fails: open again, for a new cooldown
    assert app.stats.calls == 3 and breaker.state == "open"
    now[0] = 20.0
    app.faults.clear()
    assert run(lambda: attempts(1)) == [None]
    assert app.stats.calls == 4 and breaker.state == "closed"


async def _first(stream: TextStream) -> str:
    return await anext(stream)


def test_open_breaker_escalates_without_calling(app, url) -> None:
    rungs = {m: rung(url, m, CircuitBreaker(1, 60.0), max_retries=0)
             for m in ("small", "large")}
    app.faults["small"] = "500"
    with Cascade(rungs, Climb(("small", "large"), 0)) as live:
        live.decode(ITEM)
        before = calls(app, "small")
        result = live.decode(ITEM)
    assert calls(app, "small") == before == 1
    assert "circuit open" in result.failures[0] and result.model == "large"


def test_client_errors_do_not_open_the_breaker(app, url) -> None:
    small = rung(url, "small", CircuitBreaker(1, 60.0))
    app.faults["small"] = "no-such-fault"  # the fake refuses it with 400
    with pytest.raises(BackendError, match="HTTP 400"):
        run(lambda: small.chat(CHAT))
    assert small.breaker.state == "closed" and app.stats.calls == 1


def test_cancelling_a_decode_or_a_stream_disconnects_upstream(app, url) -> None:
    live = cascade(url, stop_at=0)
    made = backend(url, "large")

    async def go() -> None:
        app.latency_s = 5.0
        task = asyncio.create_task(live.adecode(ITEM))
        await until(lambda: app.stats.calls == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: app.stats.disconnects == 1)
        assert live.rungs["small"].breaker.consecutive == 0  # no verdict on the model

        app.latency_s, app.chunk_delay_s = 0.0, 5.0
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in made.stream_chat(CHAT):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await until(lambda: app.stats.disconnects == 2)

        stream = made.stream_chat(CHAT)  # closed early, not cancelled
        assert await anext(stream) == "the"
        await stream.aclose()
        await until(lambda: app.stats.disconnects == 3)
        await live.aclose()
        await made.aclose()

    run(go)


def test_params_reach_the_upstream(app, url) -> None:
    with cascade(url, stop_at=0) as live:
        live.decode(ITEM)
        default = dict(app.stats.bodies[-1])
        live.decode(ITEM, GenerationParams(max_tokens=7, stop=("END", "\n\n"), temperature=0.4))
        given = app.stats.bodies[-1]
    assert (default["max_tokens"], default["stop"], default["temperature"]) == (32, ["\n"], 0)
    assert (given["max_tokens"], given["stop"], given["temperature"]) == (7, ["END", "\n\n"], 0.4)

    small = rung(url, "small", endpoint="chat")
    generation = run(lambda: small.chat(CHAT, GenerationParams(max_tokens=2, temperature=1.5)))
    body = app.stats.bodies[-1]
    assert body["messages"] == CHAT and body["max_tokens"] == 2 and body["temperature"] == 1.5
    assert "stop" not in body and "logprobs" not in body  # unset: the server's defaults
    assert generation.text == "the city" and generation.usage.tokens_out == 2


def test_api_key_never_in_an_error(app, url, monkeypatch) -> None:
    monkeypatch.setenv("LADDER_FAULT_KEY", SECRET)
    messages: list[str] = []
    for fault in ("500", "malformed", "hang", "drop"):
        app.faults["small"] = app.faults["large"] = fault
        with cascade(url, stop_at=0, api_key_env="LADDER_FAULT_KEY", timeout_s=0.3,
                     max_retries=0) as live, pytest.raises(CascadeFailed) as caught:
            live.decode(ITEM)
        messages += [str(caught.value), *caught.value.failures]
    assert any("authorization: Bearer ***" in m for m in messages)  # echoed, then masked
    assert all(SECRET not in m for m in messages)


def test_shared_backends_stay_open(app, url) -> None:
    rungs = {m: rung(url, m) for m in ("small", "large")}

    async def go() -> None:
        first = Cascade(rungs, Climb(("small", "large"), 0), owns_backends=False)
        await first.adecode(ITEM)
        await first.aclose()
        client = rungs["small"].backend._client
        assert client is not None and not client.is_closed
        second = Cascade(rungs, Climb(("small", "large"), 0))
        await second.adecode(ITEM)
        await second.aclose()
        assert rungs["small"].backend._client is None

    run(go)


def test_fake_upstream_header_faults_and_models(app, url) -> None:
    with httpx.Client(base_url=url, timeout=2) as client:
        assert [m["id"] for m in client.get("/models").json()["data"]] == ["small", "large"]
        answer = client.post("/completions", json={"model": "x", "prompt": "q"},
                             headers={"x-fake-fault": "503"})
        assert answer.status_code == 503
        answer = client.post("/completions", json={"model": "x", "prompt": "largest planet?"})
        assert answer.json()["choices"][0]["text"] == "Jupiter"
    assert app.stats.faults == {"503": 1} and app.stats.calls == 2
