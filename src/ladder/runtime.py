"""The live cascade: run a fitted policy on real models, one rung at a time.

After each rung the model's output becomes a one-query QueryTable laid out like the
training log, and the engine's own policy object scores it and decides (stop or
climb); nothing of the policy is re-implemented here, so a replayed log gets
exactly the decisions of the offline evaluation.

A rung whose call fails (BackendError: unreachable, timed out, circuit open) is recorded
as a 'failed' stage with NaN signals and the climb goes on; the answer is the best one a
stage that succeeded gave, and only when none did does the decode raise CascadeFailed.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import Progress

from ladder.backends.base import BackendError, GenerationParams, ModelOutput
from ladder.config import Config, ConfigError, load_config
from ladder.policies.baselines import FixedModel
from ladder.policies.moa import PyramidMoA, layer_answer
from ladder.policies.persist import load_policy
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import Router
from ladder.policies.stages import ChainPolicy
from ladder.rung import Rung, rungs_from_config
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable
from ladder.tasks import Item, TaskError, grade, item_from_dict

T = TypeVar("T")
FAILED_SIGNALS = {name: math.nan for name in ModelOutput("", "", *[math.nan] * 6).signals()}


class CascadeFailed(BackendError):
    """Every stage run for a query failed; `failures` holds each reason."""

    def __init__(self, failures: Sequence[str]):
        self.failures = tuple(failures)
        super().__init__("every model failed: " + "; ".join(self.failures))


@dataclass(frozen=True)
class RungTrace:
    """What happened at one rung: the model's answer and signals, what the policy predicted
    and compared, its decision, the model's own latency and the call's cost. A failed
    stage has decision 'failed', its reason in `error`, NaN signals and no cost."""

    model: str
    answer: str | None
    signals: dict[str, float]
    predicted_quality: float | None
    continuation_value: float | None
    decision: str  # 'stop', 'escalate' or 'failed'
    latency_s: float
    cost: float
    error: str | None = None  # why a failed stage failed (never a key)
    tokens_in: float = math.nan  # NaN when unknown (tokens_out is in signals)


@dataclass(frozen=True)
class Result:
    """The cascade's answer to one item. `model` gave the answer; `stage` is the last rung
    run (0-based); cost is every rung paid. quality: graded against the item's reference
    (or the log's grade when replaying); None when unknown. failures: the reason of each
    stage that failed, in order."""

    answer: str | None
    text: str
    model: str
    stage: int
    cost: float
    trace: tuple[RungTrace, ...]
    quality: float | None
    latency_s: float
    overhead_s: float  # time spent outside the models' calls
    route: dict | None = None  # router / routed: the start chosen and ĝ per model
    pyramid: dict | None = None  # moa: P_fail, both barriers of Eq. 5, the decision
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_table(item: Item, chain: Sequence[str], inputs: Sequence[str]) -> QueryTable:
    """An empty one-query QueryTable laid out like the training log (the same optional
    signal sources), filled rung by rung with `record`."""
    r = len(chain)
    signals = {name: np.full((1, r), np.nan) for name in SIGNAL_COLUMNS}
    answers = np.full((1, r), -1, dtype=np.int64) if "answers" in inputs else None
    share = np.full((1, r), np.nan) if "samples" in inputs else None
    prompt_len = np.array([float(len(item.prompt))]) if "prompt" in inputs else None
    zeros = np.zeros((1, r))
    # the task, for predictors that pool tasks (an unknown or absent one: shared effects)
    benchmark = None if item.domain is None else np.array([item.domain], dtype=object)
    return QueryTable(np.array([item.id], dtype=object), tuple(chain), zeros, zeros, signals,
                      answers=answers, sample_share=share, prompt_len=prompt_len,
                      benchmark=benchmark)


def record(table: QueryTable, stage: int, output: ModelOutput, codes: dict[str, int]) -> None:
    """Write one rung's output into its column; equal answers get equal codes (`codes` maps
    this query's answers seen so far to their codes)."""
    for name in SIGNAL_COLUMNS:
        table.signals[name][0, stage] = getattr(output, name)
    if table.answers is not None and output.answer is not None:
        table.answers[0, stage] = codes.setdefault(output.answer, len(codes))
    if table.sample_share is not None:
        table.sample_share[0, stage] = output.sample_share


LIVE = "threshold, dp, seed_heuristic, fixed, router, routed or moa"


def policy_chain(policy: object) -> tuple[str, ...]:
    """The models a fitted policy may run, in order."""
    if isinstance(policy, ChainPolicy | RoutedCascade | PyramidMoA):
        return tuple(policy.chain_)
    if isinstance(policy, FixedModel):
        return (policy.model_,)
    if isinstance(policy, Router):
        return tuple(policy.models_)
    family = getattr(policy, "family", type(policy).__name__)
    raise ConfigError(f"a '{family}' policy cannot run live (it needs every model's answer "
                      f"in advance); fit a {LIVE} policy")


def _route(policy: object, item: Item) -> tuple[object, dict | None]:
    """What climbs for this item (a chain policy, or the name of the one model to run)
    and, for routers, what the router saw: the start it chose and ĝ per model."""
    router = policy if isinstance(policy, Router) else getattr(policy, "router_", None)
    if router is None:
        if isinstance(policy, RoutedCascade):
            return policy.plan(next(iter(policy.plans_))), None
        return (policy if isinstance(policy, ChainPolicy) else policy.model_), None
    start, quality = router.decide(item.prompt, item.domain)
    route = {"start": start,
             "predicted_quality": dict(zip(router.models_, map(float, quality), strict=True))}
    return (policy.plan(start) if isinstance(policy, RoutedCascade) else start), route


def _trace(name: str, output: ModelOutput, predicted: float | None,
           continuation: float | None, stop: bool) -> RungTrace:
    return RungTrace(name, output.answer, output.signals(), predicted, continuation,
                     "stop" if stop else "escalate", output.latency_s, float(output.cost),
                     tokens_in=float(output.tokens_in))


def _failed(name: str, error: str, wall: float) -> RungTrace:
    return RungTrace(name, None, dict(FAILED_SIGNALS), None, None, "failed", wall, 0.0, error)


def _reason(name: str, error: BackendError) -> str:
    """The failure as `name: what happened` (backend messages name their own model)."""
    message = str(error)
    return message if message.startswith(f"{name}:") else f"{name}: {message}"


class Cascade:
    """Runs a fitted policy on live models: `decode` one item, `decode_many` a batch.

    The sync methods run on the Cascade's own event loop; from async code or a notebook
    use `adecode` / `adecode_many`. `close()` (or `with`) releases the backends unless
    `owns_backends` is False (rungs shared by several cascades, closed by their owner)."""

    def __init__(self, rungs: dict[str, Rung], policy: object, task_type: str = "short",
                 concurrency: int = 4, owns_backends: bool = True):
        self.policy = policy
        self.chain = policy_chain(policy)
        missing = [m for m in self.chain if m not in rungs]
        if missing:
            raise ConfigError(f"the policy climbs {', '.join(self.chain)} but the config has no "
                              f"model named {', '.join(missing)}")
        self.rungs = {name: rungs[name] for name in self.chain}
        self.task_type = task_type
        self.concurrency = concurrency
        self.owns_backends = owns_backends
        self._inputs = getattr(policy, "inputs_", ("prompt", "answers"))
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(cls, config: str | Path | Config, policy: object | None = None) -> Cascade:
        """Build from a YAML config (its `policy` file unless a fitted policy is given)."""
        if not isinstance(config, Config):
            config = load_config(config)
        if policy is None:
            path = config.policy_path()
            if path is None:
                raise ConfigError("the config names no policy file (key 'policy') and none "
                                  "was given")
            policy = load_policy(path)
        configured = {m.name for m in config.models}
        # models the config lacks are reported by __init__, naming the policy's chain
        names = [n for n in policy_chain(policy) if n in configured]
        return cls(rungs_from_config(config, names), policy, config.task.type,
                   config.defaults.concurrency)

    def _item(self, query: Item | str | dict) -> Item:
        if isinstance(query, Item):
            return query
        if isinstance(query, dict):
            return item_from_dict(query)
        if self.task_type == "choice":
            raise TaskError("a plain prompt has no options; for multiple choice pass an item "
                            "with 'options' (a dict or ladder.Item)")
        key = hashlib.blake2b(query.encode(), digest_size=6).hexdigest()
        return Item(f"prompt-{key}", query, self.task_type)

    async def adecode(self, query: Item | str | dict,
                      params: GenerationParams | None = None) -> Result:
        """Climb the ladder for one item (or prompt string, of the config's task type);
        `params` override the rungs' generation settings where set."""
        item = self._item(query)
        start = time.perf_counter()
        if isinstance(self.policy, PyramidMoA):
            return await self._pyramid(item, start, params)
        climber, route = _route(self.policy, item)
        chain = climber.chain_ if isinstance(climber, ChainPolicy) else self._fallbacks(climber)
        outputs: list[ModelOutput | None] = []
        trace: list[RungTrace] = []
        scores = np.empty((1, 0))
        model_time = 0.0
        returned = 0
        table = live_table(item, chain, getattr(climber, "inputs_", self._inputs))
        codes: dict[str, int] = {}
        for stage, name in enumerate(chain):
            output, wall, error = await self._attempt(name, item, params)
            model_time += wall
            outputs.append(output)
            last = stage == len(chain) - 1
            predicted = continuation = None
            stop = output is not None or last
            if isinstance(climber, ChainPolicy):
                # a failed stage stays NaN in the table; its step keeps the scores aligned
                # and gives the position to return should it be the last stage
                if output is not None:
                    record(table, stage, output, codes)
                decision = climber.step(table, stage, scores)
                scores = decision.scores
                returned = int(decision.returned[0])
                stop = last or (output is not None and bool(decision.stop[0]))
                predicted = float(scores[0, -1])
                if decision.continuation is not None:
                    continuation = float(decision.continuation[0])
            elif output is not None:
                returned = stage
            if output is None:
                trace.append(_failed(name, error or "", wall))
            else:
                trace.append(_trace(name, output, predicted, continuation, stop))
            if stop:
                break
        return self._result(item, outputs, returned, chain, trace, start, model_time,
                            route=route)

    def _fallbacks(self, pick: str) -> tuple[str, ...]:
        """A single model's run (router, fixed): the pick, then should it fail the dearer
        models of the cost-ordered chain, then the cheaper ones, dearest first."""
        at = self.chain.index(pick)
        return (pick, *self.chain[at + 1:], *reversed(self.chain[:at]))

    async def _attempt(self, name: str, item: Item, params: GenerationParams | None
                       ) -> tuple[ModelOutput | None, float, str | None]:
        """One rung's output and wall time, or None and the reason it failed."""
        start = time.perf_counter()
        try:
            output, wall = await self.rungs[name].run(item, params)
        except BackendError as error:
            return None, time.perf_counter() - start, _reason(name, error)
        return output, wall, None

    async def _pyramid(self, item: Item, start: float, params: GenerationParams | None
                       ) -> Result:
        """Pyramid MoA live: layer 1's members run concurrently and vote; the oracle runs
        only when P_fail clears Eq. 5's barriers (or when every member failed). A failed
        member is a missing answer; a failed oracle leaves layer 1's majority."""
        policy = self.policy
        members, chain = list(policy.layer1_), policy.chain_
        began = time.perf_counter()
        runs = await asyncio.gather(*(self._attempt(m, item, params) for m in members))
        model_time = time.perf_counter() - began
        table = live_table(item, chain, ("answers",))
        codes: dict[str, int] = {}
        outputs = [output for output, _, _ in runs]
        for stage, output in enumerate(outputs):
            if output is not None:
                record(table, stage, output, codes)
        answered = any(o is not None for o in outputs)
        p_fail = float(policy.p_fail(table)[0]) if answered else math.nan
        escalate = not answered or p_fail > policy.barrier_
        trace = [_trace(m, o, None, None, not escalate) if o is not None
                 else _failed(m, error or "", wall)
                 for m, (o, wall, error) in zip(members, runs, strict=True)]
        returned = int(layer_answer(table, range(len(members)))[0])
        if escalate:
            output, wall, error = await self._attempt(policy.oracle_, item, params)
            model_time += wall
            outputs.append(output)
            if output is None:
                trace.append(_failed(policy.oracle_, error or "", wall))
            else:
                trace.append(_trace(policy.oracle_, output, None, None, True))
                returned = len(members)
        pyramid = {"p_fail": p_fail, "cost_barrier": policy.cost_barrier_,
                   "imperfection_barrier": policy.imperfection_barrier_,
                   "barrier": policy.barrier_, "escalate": bool(escalate)}
        return self._result(item, outputs, returned, chain, trace, start, model_time,
                            pyramid=pyramid)

    @staticmethod
    def _result(item: Item, outputs: list[ModelOutput | None], returned: int,
                chain: Sequence[str], trace: list[RungTrace], start: float,
                model_time: float, **extra: dict | None) -> Result:
        """The result answered by stage `returned`, or by the latest stage that succeeded
        should that one have failed; CascadeFailed when none did."""
        failures = tuple(t.error for t in trace if t.error is not None)
        if outputs[returned] is None:
            succeeded = [k for k, o in enumerate(outputs) if o is not None]
            if not succeeded:
                raise CascadeFailed(failures)
            returned = succeeded[-1]
        chosen = outputs[returned]
        assert chosen is not None
        quality = grade(item, chosen.answer) if item.reference is not None else chosen.quality
        total = time.perf_counter() - start
        return Result(chosen.answer, chosen.text, chain[returned], len(trace) - 1,
                      math.fsum(t.cost for t in trace), tuple(trace), quality, total,
                      total - model_time, **extra, failures=failures)

    async def adecode_many(self, queries: Iterable[Item | str | dict],
                           concurrency: int | None = None, progress: bool = True,
                           params: GenerationParams | None = None) -> list[Result]:
        """Decode a batch, at most `concurrency` items in flight, results in input order."""
        items = [self._item(q) for q in queries]
        gate = asyncio.Semaphore(concurrency or self.concurrency)
        with Progress(console=Console(stderr=True), transient=True,
                      disable=not progress or len(items) < 2) as bar:
            task = bar.add_task("decoding", total=len(items))

            async def one(item: Item) -> Result:
                async with gate:
                    result = await self.adecode(item, params)
                bar.advance(task)
                return result

            return list(await asyncio.gather(*(one(i) for i in items)))

    def _sync(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on this Cascade's own event loop, kept between calls so backends keep their
        connections (a loop thread would cost ~0.3 ms of hand-off per decode)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("an event loop is running in this thread (a notebook or async "
                               "code): use `await cascade.adecode(...)` instead of decode")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def decode(self, query: Item | str | dict,
               params: GenerationParams | None = None) -> Result:
        return self._sync(self.adecode(query, params))

    def decode_many(self, queries: Iterable[Item | str | dict], concurrency: int | None = None,
                    progress: bool = True, params: GenerationParams | None = None
                    ) -> list[Result]:
        return self._sync(self.adecode_many(queries, concurrency, progress, params))

    async def aclose(self) -> None:
        """Close the backends, when this cascade owns them."""
        if not self.owns_backends:
            return
        for rung in self.rungs.values():
            await rung.backend.aclose()

    def close(self) -> None:
        if self._loop is not None:
            self._sync(self.aclose())
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Cascade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
