"""The serving logic: one request in, a cascade or a pass-through call, a response out.

HTTP-free (the app adapts it), so tests and benchmarks can drive it directly. Every
request is recorded in the store off the request path; a stage that fails is recorded
with its reason and the ladder climbs on; a pass-through model that fails before its
first byte falls back to the models configured after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ladder.backends.base import BackendError, GenerationParams
from ladder.config import Config
from ladder.rung import Rung, rungs_from_config
from ladder.runtime import CascadeFailed, Result
from ladder.server import metrics
from ladder.server.auth import ApiKeys
from ladder.server.catalog import Catalog, Target
from ladder.server.errors import ClientError, Overloaded, Unavailable
from ladder.server.protocol import ChatCompletionRequest, CompletionRequest, FeedbackRequest
from ladder.server.records import FeedbackRecord, RequestRecord, StageRecord
from ladder.server.relay import Relay
from ladder.server.responses import DONE, Chunks, completion_body, pieces, usage_dict
from ladder.server.shadow import Shadow
from ladder.server.store import Store
from ladder.tasks import Item

Request = ChatCompletionRequest | CompletionRequest
log = logging.getLogger("ladder.server")
FEEDBACK_RETRY_S = (0.05, 0.25)  # pauses before looking an unknown feedback id up again


@dataclass
class Served:
    """A finished response: its body, the headers the app adds, the stored record."""

    body: dict[str, Any]
    headers: dict[str, str]
    record: RequestRecord


@dataclass
class Opened:
    """A stream ready to send: a cascade's chosen answer, or a pass-through whose first
    delta has arrived (so falling back is over). `aclose()` (always, however the response
    ended, even if never iterated) closes the backend call and records the request once."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    finish: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.chunks.aclose()  # type: ignore[attr-defined]
        if self.finish is not None:
            await self.finish()


def prompt_of(request: Request) -> str:
    """The text a cascade is asked: the one user message, or the conversation with roles."""
    if isinstance(request, CompletionRequest):
        text = request.text()
        if text is None:
            raise ClientError("one prompt per request: send a string", "prompt")
        return text
    messages = request.messages
    if len(messages) == 1:
        return messages[0].text()
    return "\n".join(f"{m.role}: {m.text()}" for m in messages)


def messages_of(request: ChatCompletionRequest) -> list[dict]:
    """The chat messages as a pass-through backend sends them on."""
    return [m.model_dump(exclude_none=True) for m in request.messages]


def params_of(request: Request) -> GenerationParams:
    return GenerationParams(max_tokens=request.token_limit(), stop=request.stop_list(),
                            temperature=request.temperature)


def _finite(x: float | None) -> float | None:
    """A number JSON can carry: None for NaN (a prediction made without a failed stage's
    signals), which a JSON body cannot hold."""
    return None if x is None or not math.isfinite(x) else x


def _new_id(endpoint: str) -> str:
    return f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


class Gateway:
    """The policies, the models and the store behind the HTTP routes."""

    def __init__(self, config: Config, store: Store, *, replica: str | None = None,
                 rungs: dict[str, Rung] | None = None, cache_dir: os.PathLike | None = None):
        if config.task.type == "choice":
            from ladder.config import ConfigError

            raise ConfigError("task.type: chat requests carry no options, so the gateway "
                              "serves 'short' or 'number' tasks, fitted on generated answers")
        self.config = config
        self.store = store
        self.rungs = rungs if rungs is not None else rungs_from_config(config)
        self.catalog = Catalog(config, self.rungs, cache_dir)
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}"
        self.keys = ApiKeys(config.server.api_keys)
        self.in_flight = 0
        self.shadow = Shadow.from_config(config, self.rungs, store, lambda: self.in_flight,
                                         self.replica)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load and fit the policies in the background (readyz tells when) and start the
        loop that reads every replica's feedback into the online learners."""
        self._tasks.append(asyncio.create_task(self.catalog.start()))
        self._tasks.append(asyncio.create_task(self._sync_loop()))
        self._tasks += self.catalog.refitting(self.store)
        self._tasks += [] if self.shadow is None else self.shadow.start()

    async def wait_ready(self) -> None:
        await self._tasks[0]

    async def _sync_loop(self) -> None:
        await self._tasks[0]
        while True:
            for target in list(self.catalog.targets.values()):
                if target.learner is not None and target.cascade is not None:
                    try:
                        await target.learner.sync(self.store)
                    except Exception:  # a failed refit must not stop serving: keep the last
                        log.exception("learner %s: sync failed", target.name)
                    target.cascade.policy = target.learner.policy
            await asyncio.sleep(self.config.server.sync_s)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(self.store.close)
        for rung in self.rungs.values():
            with contextlib.suppress(Exception):
                await rung.backend.aclose()

    async def readiness(self) -> dict[str, Any]:
        database = await asyncio.to_thread(self.store.healthy)
        return {"ready": self.catalog.ready and database,
                "pending": list(self.catalog.pending), "errors": dict(self.catalog.errors),
                "database": database,
                "breakers": {name: rung.breaker.state for name, rung in self.rungs.items()}}

    def admit(self) -> Callable[[], None]:
        """Take a slot for one request in flight, or raise Overloaded when the limit is
        reached (the client is told to retry rather than queued without bound). Returns
        the slot's release (idempotent): a stream holds its slot until it ends."""
        if self.in_flight >= self.config.server.max_concurrency:
            metrics.REJECTED.labels("overloaded").inc()
            raise Overloaded(f"more than {self.config.server.max_concurrency} requests in "
                             "flight; retry shortly")
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.in_flight -= 1
                metrics.IN_FLIGHT.dec()

        return release

    async def _target(self, request: Request) -> Target:
        if request.n != 1:
            raise ClientError("n must be 1: the gateway returns one answer", "n")
        target = await self.catalog.resolve(request.model)
        if target.cascade is None and target.rung is None:
            raise Unavailable(f"'{request.model}' is not ready yet")
        return target

    async def respond(self, endpoint: str, request: Request, key_id: str | None) -> Served:
        """A whole (non-streamed) response."""
        began = time.perf_counter()
        target = await self._target(request)
        rid = _new_id(endpoint)
        with self._failures_recorded(rid, target, endpoint, request, began, key_id):
            async with asyncio.timeout(self.config.server.request_timeout_s):
                if target.cascade is None:
                    return await self._passthrough(target, rid, endpoint, request, began,
                                                   key_id)
                result = await self._cascade(target, rid, request)
        served = self._cascade_served(target, rid, endpoint, request, result, began, key_id)
        self._shadowed(target, rid, request, result)
        return served

    @contextlib.contextmanager
    def _failures_recorded(self, rid: str, target: Target, endpoint: str, request: Request,
                           began: float, key_id: str | None) -> Iterator[None]:
        """A request that timed out (504) or whose every rung failed (503) is recorded
        too, with why (a pass-through records its own failures, stage by stage)."""
        kind = "passthrough" if target.cascade is None else "cascade"
        try:
            yield
        except TimeoutError:
            self._record(rid, target.name, kind, endpoint, request, None, -1, 0.0, 0.0,
                         began, 0.0, (), key_id, 504, "server.request_timeout_s exceeded")
            raise
        except CascadeFailed as error:
            self._record(rid, target.name, kind, endpoint, request, None, -1, 0.0, 0.0,
                         began, 0.0, (), key_id, 503, str(error))
            raise Unavailable(str(error), retry_after=5) from None

    async def _cascade(self, target: Target, rid: str, request: Request) -> Result:
        item = Item(rid, prompt_of(request), self.config.task.type)
        return await target.cascade.adecode(item, params_of(request))

    def _shadowed(self, target: Target, rid: str, request: Request, result: Result) -> None:
        """Offer a served cascade request to the shadow runs (O(1), nothing awaited)."""
        if self.shadow is not None:
            self.shadow.offer(rid, prompt_of(request), target.cascade.chain, result,
                              params_of(request))

    def _top_cost(self, chain: Sequence[str], result: Result) -> float:
        """What the top rung alone would have cost: its own cost if it ran, else priced
        on this request's tokens in and the answer's tokens out."""
        for trace in result.trace:
            if trace.model == chain[-1] and trace.decision != "failed":
                return trace.cost
        tokens_in = next((t.tokens_in for t in result.trace if not math.isnan(t.tokens_in)), 0.0)
        answered = next((t for t in result.trace if t.model == result.model), None)
        tokens_out = 0.0 if answered is None else answered.signals.get("tokens_out", 0.0)
        return self.rungs[chain[-1]].price.cost(tokens_in, 0.0 if math.isnan(tokens_out)
                                                else tokens_out, 0.0)

    def _cascade_served(self, target: Target, rid: str, endpoint: str, request: Request,
                        result: Result, began: float, key_id: str | None) -> Served:
        chain = target.cascade.chain
        saved = self._top_cost(chain, result) - result.cost
        answered = next(t for t in result.trace if t.model == result.model)
        text = result.text.strip()
        usage = usage_dict(answered.tokens_in, answered.signals.get("tokens_out", math.nan))
        ladder = {"policy": target.name, "cost": result.cost, "saved": saved,
                  "top_model": chain[-1],
                  "stages": [{"model": t.model, "decision": t.decision,
                              "predicted_quality": _finite(t.predicted_quality),
                              "cost": t.cost, "latency_ms": 1000 * t.latency_s,
                              "answer": t.answer, "error": t.error} for t in result.trace]}
        body = completion_body(rid, endpoint, result.model, text, usage, ladder)
        stages = tuple(
            StageRecord(i, t.model, t.answer, text if t.model == result.model else "",
                        t.signals, t.predicted_quality, t.decision, t.error, t.cost,
                        t.latency_s, t.tokens_in, t.signals.get("tokens_out", math.nan))
            for i, t in enumerate(result.trace))
        record = self._record(rid, target.name, "cascade", endpoint, request, result.model,
                              result.stage, result.cost, saved, began, result.overhead_s,
                              stages, key_id)
        return Served(body, self._headers(record), record)

    def _record(self, rid: str, policy: str, kind: str, endpoint: str, request: Request,
                model: str | None, stage: int, cost: float, saved: float, began: float,
                overhead: float, stages: tuple[StageRecord, ...], key_id: str | None,
                status: int = 200, error: str | None = None) -> RequestRecord:
        latency = time.perf_counter() - began
        text = prompt_of(request)
        prompt = text if self.config.server.log_prompts else None
        record = RequestRecord(rid, time.time(), self.replica, key_id, policy, kind, endpoint,
                               prompt, model, stage, cost, saved, status, error, latency,
                               overhead, stages, prompt_len=len(text))
        self.store.submit(record)
        metrics.REQUESTS.labels(policy, model or "", str(status)).inc()
        metrics.LATENCY.labels(policy).observe(latency)
        metrics.OVERHEAD.labels(policy).observe(overhead)
        metrics.COST.labels(policy).inc(max(cost, 0.0))
        if saved > 0:
            metrics.SAVED.labels(policy).inc(saved)
        for s in stages:
            metrics.STAGES.labels(policy, s.model, s.decision).inc()
        return record

    @staticmethod
    def _headers(record: RequestRecord) -> dict[str, str]:
        return {"x-ladder-stage": str(record.stage), "x-request-id": record.id,
                "x-ladder-overhead-ms": f"{1000 * record.overhead_s:.3f}",
                "x-ladder-replica": record.replica}

    def _fallbacks(self, first: Rung) -> list[Rung]:
        """The pass-through model, then the models configured after it (escalation)."""
        names = list(self.rungs)
        return [self.rungs[n] for n in names[names.index(first.name):]]

    async def _call(self, rung: Rung, endpoint: str, request: Request) -> Any:
        params = params_of(request)
        if endpoint == "chat":
            return await rung.chat(messages_of(request), params)
        return await rung.complete(prompt_of(request), params)

    async def _passthrough(self, target: Target, rid: str, endpoint: str, request: Request,
                           began: float, key_id: str | None) -> Served:
        stages: list[StageRecord] = []
        for stage, rung in enumerate(self._fallbacks(target.rung)):
            start = time.perf_counter()
            try:
                generation = await self._call(rung, endpoint, request)
            except BackendError as error:
                stages.append(self._failed(stage, rung, error, start))
                continue
            usage = generation.usage
            cost = rung.price.cost(usage.tokens_in, usage.tokens_out, usage.latency_s)
            stages.append(StageRecord(stage, rung.name, None, generation.text, {}, None,
                                      "stop", None, cost, usage.latency_s, usage.tokens_in,
                                      usage.tokens_out))
            model_time = time.perf_counter() - start
            record = self._record(rid, target.name, "passthrough", endpoint, request,
                                  rung.name, stage, sum(s.cost for s in stages), 0.0, began,
                                  time.perf_counter() - began - model_time, tuple(stages),
                                  key_id)
            body = completion_body(rid, endpoint, rung.name, generation.text,
                                   usage_dict(usage.tokens_in, usage.tokens_out), None)
            if len(stages) > 1:
                body["ladder"] = {"policy": target.name, "fallback": [
                    {"model": s.model, "error": s.error} for s in stages[:-1]]}
            return Served(body, self._headers(record), record)
        self._all_failed(rid, target, endpoint, request, stages, began, key_id)

    def _all_failed(self, rid: str, target: Target, endpoint: str, request: Request,
                    stages: list[StageRecord], began: float, key_id: str | None) -> NoReturn:
        """Record a pass-through whose every model failed, and answer 503."""
        self._record(rid, target.name, "passthrough", endpoint, request, None, len(stages) - 1,
                     0.0, 0.0, began, 0.0, tuple(stages), key_id, 503, "every model failed")
        raise Unavailable("every model failed: " + "; ".join(s.error or "" for s in stages),
                          retry_after=5)

    @staticmethod
    def _failed(stage: int, rung: Rung, error: Exception, start: float) -> StageRecord:
        return StageRecord(stage, rung.name, None, "", {}, None, "failed", str(error), 0.0,
                           time.perf_counter() - start, math.nan, math.nan)

    async def stream(self, endpoint: str, request: Request, key_id: str | None) -> Opened:
        """A streamed response. A cascade streams its chosen answer once the stop decision
        is made; a pass-through relays deltas, falling back to the next model while no
        byte has been sent. The returned chunks close the backend call when abandoned."""
        began = time.perf_counter()
        target = await self._target(request)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        rid = _new_id(endpoint)
        with self._failures_recorded(rid, target, endpoint, request, began, key_id):
            async with asyncio.timeout(self.config.server.request_timeout_s):  # 1st byte
                if target.cascade is None:
                    return await self._open_passthrough(target, rid, endpoint, request, began,
                                                        key_id, include_usage)
                result = await self._cascade(target, rid, request)
        served = self._cascade_served(target, rid, endpoint, request, result, began, key_id)

        async def finished() -> None:  # the stream has been sent: shadow it now
            self._shadowed(target, rid, request, result)

        return Opened(self._replay_chunks(served, endpoint, include_usage), served.headers,
                      finished)

    @staticmethod
    async def _replay_chunks(served: Served, endpoint: str,
                             include_usage: bool) -> AsyncIterator[bytes]:
        body = served.body
        chunks = Chunks(body["id"], endpoint, body["model"])
        choice = body["choices"][0]
        text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
        yield chunks.role() if endpoint == "chat" else chunks.text("")
        for piece in pieces(text):
            yield chunks.text(piece)
        yield chunks.finish(body.get("ladder"))
        if include_usage:
            yield chunks.usage(body["usage"])
        yield DONE

    async def _open_passthrough(self, target: Target, rid: str, endpoint: str,
                                request: Request, began: float, key_id: str | None,
                                include_usage: bool) -> Opened:
        stages: list[StageRecord] = []
        params = params_of(request)
        for stage, rung in enumerate(self._fallbacks(target.rung)):
            start = time.perf_counter()
            try:
                if endpoint == "chat":
                    stream = rung.stream_chat(messages_of(request), params)
                else:
                    stream = rung.stream_complete(prompt_of(request), params)
                first = await anext(stream, "")
            except BackendError as error:
                stages.append(self._failed(stage, rung, error, start))
                continue
            headers = {"x-ladder-stage": str(stage), "x-request-id": rid}
            relay = Relay(self._record, rid, target, endpoint, request, rung, stream, first, stages,
                           began, start, key_id)
            return Opened(relay.chunks(include_usage), headers, relay.finish)
        self._all_failed(rid, target, endpoint, request, stages, began, key_id)

    async def feedback(self, request: FeedbackRequest, key_id: str | None) -> bool:
        """Record a label durably (True), or False for an id no replica served (or a model
        that request did not run). An id not found is looked up again after a moment:
        behind a load balancer the replica that served it may not have committed its row
        yet (its writer batches for ~10 ms)."""
        record = FeedbackRecord(request.id, request.quality, time.time(), key_id,
                                request.model)
        recorded = await self.store.add_feedback(record)
        for pause in FEEDBACK_RETRY_S if not recorded else ():
            await asyncio.sleep(pause)
            if recorded := await self.store.add_feedback(record):
                break
        metrics.FEEDBACK.labels("recorded" if recorded else "unknown_id").inc()
        return recorded

