"""Shadow runs: quality labels for unlabelled traffic, made after the response is sent.

For a sampled share (`server.shadow.rate`) of cascade requests, a shadow run runs the rungs
the cascade skipped (and the reference rung, when the chain lacks it) and grades every
rung's answer with the judge (`ladder.judge`): against the reference rung's answer, or
alone for the reference's own. The rungs are stored as stages with decision 'shadow', the
labels as feedback rows with their source and the judge's provenance, so the online
learners read them like a person's labels (a person's label wins over a judge's) and
`ladder logs export` writes them. A rung or a judge that fails leaves its cell unlabelled,
counted in /metrics; nothing of it reaches the request that was served.

Never on the request path: `offer` awaits nothing and is O(1): it samples, refuses when
the gateway is busy, the queue is full or the budget is spent (each a counted drop), and
puts the job on a queue that `max_concurrency` worker tasks drain. A job that has waited
is dropped if the gateway got busy meanwhile. With models in this process (llama.cpp) a
shadow call and a served one would take turns on the same model and share the cores, so
there each shadow call waits until no request has been in flight for `IDLE_S` (a client
sending requests back to back leaves gaps of a few ms, which are not pauses); a request
that arrives during a shadow call still waits for that one call (docs/gateway.md, "Shadow
runs").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ladder.backends.base import BackendError, GenerationParams, ModelOutput
from ladder.config import Config, ShadowSpec
from ladder.judge.grader import Judge, Verdict, judge_from_spec
from ladder.rung import Rung
from ladder.runtime import Result
from ladder.server import metrics
from ladder.server.records import SHADOW, FeedbackRecord, ShadowRecord, StageRecord
from ladder.server.store import Store
from ladder.tasks import Item

log = logging.getLogger("ladder.server")
IDLE_S = 0.1  # with models in process, how long nothing must be in flight before a shadow call
IDLE_POLL_S = 0.01  # how often a shadow call waiting for that looks again
Answer = tuple[str | None, str | None]  # a rung's extracted answer and its whole text


@dataclass(frozen=True)
class Job:
    """One served request to shadow: what it asked, the chain its policy climbs, the
    answers of the rungs that ran, and the stage number the shadow's rungs start at."""

    rid: str
    prompt: str
    chain: tuple[str, ...]
    answers: dict[str, Answer]  # served rungs that answered: model → answer
    ran: frozenset[str]  # every served rung, failed ones too (not run again)
    next_stage: int
    params: GenerationParams


class Shadow:
    """The shadow runs of one gateway process (see the module docstring).

    load: the requests in flight now; busy_limit: above it no shadow work starts;
    wait_idle: each shadow call waits for a pause in the traffic (models in process)."""

    def __init__(self, spec: ShadowSpec, rungs: dict[str, Rung], store: Store, *,
                 task_type: str, load: Callable[[], int], busy_limit: float,
                 wait_idle: bool, seed: int = 0, timeout_s: float = 120.0):
        self.spec = spec
        self.rungs = rungs
        self.store = store
        self.judge: Judge = judge_from_spec(spec, rungs)
        self.task_type = task_type
        self.load = load
        self.busy_limit = busy_limit
        self.wait_idle = wait_idle
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.served = 0  # cascade requests served here: the budget's denominator
        self.spent = 0.0  # what the finished shadow runs cost
        self.finished = 0
        self.running = 0
        self._judge_failures: Counter[str] = Counter()  # judge.failures already counted

    @classmethod
    def from_config(cls, config: Config, rungs: dict[str, Rung], store: Store,
                    load: Callable[[], int], replica: str) -> Shadow | None:
        """The config's shadow runs (None when `server.shadow` is absent or its rate 0),
        sampled by a generator seeded per replica."""
        spec = config.server.shadow
        if spec is None or spec.rate == 0:
            return None
        seed = int.from_bytes(hashlib.blake2b(replica.encode(), digest_size=8).digest(), "big")
        return cls(spec, rungs, store, task_type=config.task.type, load=load,
                   busy_limit=spec.busy_share * config.server.max_concurrency,
                   wait_idle=any(m.backend == "llamacpp" for m in config.models), seed=seed,
                   timeout_s=config.server.request_timeout_s)

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._work()) for _ in range(self.spec.max_concurrency)]

    # -- the request path: O(1), never awaits --------------------------------------------

    def offer(self, rid: str, prompt: str, chain: Sequence[str], result: Result,
              params: GenerationParams) -> bool:
        """Count a served cascade request and, if sampled and allowed, queue its shadow
        run; True when queued."""
        self.served += 1
        metrics.SHADOW_COST_PER_REQUEST.set(self.spent / self.served)
        if self.rng.random() >= self.spec.rate:
            return False
        reason = self._refusal()
        if reason is not None:
            metrics.SHADOW_DROPPED.labels(reason).inc()
            return False
        answered = [t for t in result.trace if t.decision != "failed"]
        answers = {t.model: (t.answer, result.text if t.model == result.model else None)
                   for t in answered}
        self.queue.put_nowait(Job(rid, prompt, tuple(chain), answers,
                                  frozenset(t.model for t in result.trace), len(result.trace),
                                  params))
        return True

    def _refusal(self) -> str | None:
        """Why a sampled request gets no shadow run now, or None."""
        if self.load() > self.busy_limit:
            return "busy"
        idle_workers = self.spec.max_concurrency - self.running
        if self.queue.qsize() >= self.spec.max_pending + max(idle_workers, 0):
            return "queue_full"
        budget = self.spec.budget
        if budget is not None:
            per_run = self.spent / self.finished if self.finished else 0.0
            ahead = (self.queue.qsize() + self.running + 1) * per_run  # this one included
            if self.spent + ahead > budget * self.served:
                return "budget"
        return None

    # -- the workers ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            if not self.wait_idle and self.load() > self.busy_limit:
                metrics.SHADOW_DROPPED.labels("busy").inc()  # got busy while it waited
                continue
            self.running += 1
            metrics.SHADOW_RUNS.labels("started").inc()
            try:
                await self.run(job)
            except Exception:  # a bug must not stop the worker: the job alone is lost
                log.exception("shadow run for %s failed", job.rid)
                metrics.SHADOW_DROPPED.labels("error").inc()
            finally:
                self.running -= 1

    async def run(self, job: Job) -> ShadowRecord:
        """Run the job's missing rungs, grade every answer, queue the record for the
        store (dropped, and counted, when the writer's queue is full)."""
        answers = dict(job.answers)
        stages: list[StageRecord] = []
        for model in self._missing(job):
            output = await self._rung(model, job)
            if output is None:
                continue
            stages.append(StageRecord(
                job.next_stage + len(stages), model, output.answer, "", output.signals(),
                None, SHADOW, None, float(output.cost or 0.0), output.latency_s,
                output.tokens_in, output.tokens_out))
            answers[model] = (output.answer, output.text)
        cost = sum(s.cost for s in stages)
        labels = []
        for model in answers:
            await self._turn()
            verdict = await self._grade(job.prompt, model, answers)
            cost += verdict.cost
            if verdict.quality is not None:
                labels.append(FeedbackRecord(job.rid, verdict.quality, time.time(), None, model,
                                             verdict.source, self.judge.provenance,
                                             verdict.cost))
                metrics.SHADOW_LABELS.labels(verdict.source).inc()
        self._count_judge_failures()
        self.spent += cost
        self.finished += 1
        metrics.SHADOW_COST.inc(cost)
        metrics.SHADOW_COST_PER_REQUEST.set(self.spent / max(self.served, 1))
        record = ShadowRecord(job.rid, tuple(stages), tuple(labels))
        if not self.store.offer_shadow(record):
            metrics.SHADOW_DROPPED.labels("store_full").inc()
        metrics.SHADOW_RUNS.labels("finished").inc()
        return record

    def _missing(self, job: Job) -> list[str]:
        """The chain's rungs the request did not run, then the reference if outside it."""
        missing = [m for m in job.chain if m not in job.ran]
        reference = self.judge.reference
        if reference is not None and reference not in job.chain and reference not in job.ran:
            missing.append(reference)
        return missing

    async def _turn(self) -> None:
        """With models in process, wait until no request has been in flight for IDLE_S
        (polled: a served call on such a model takes longer than a poll)."""
        quiet = 0.0
        while self.wait_idle and quiet < IDLE_S:
            await asyncio.sleep(IDLE_POLL_S)
            quiet = quiet + IDLE_POLL_S if self.load() == 0 else 0.0

    async def _rung(self, model: str, job: Job) -> ModelOutput | None:
        """One rung's output as the runtime runs it (same template and parameters), or
        None when it fails (counted)."""
        await self._turn()
        try:
            async with asyncio.timeout(self.timeout_s):
                output, _ = await self.rungs[model].run(
                    Item(job.rid, job.prompt, self.task_type), job.params)
        except (BackendError, TimeoutError) as error:
            log.info("shadow run for %s: %s failed: %s", job.rid, model, error)
            metrics.SHADOW_RUNG_FAILURES.labels(model).inc()
            return None
        return output

    async def _grade(self, query: str, model: str, answers: dict[str, Answer]) -> Verdict:
        """A rung's label: against the reference rung's answer, or by the judge alone for
        the reference's own answer (1.0 from the reference itself when no judge model is
        configured) and wherever the reference gave none."""
        answer, text = answers[model]
        reference = self.judge.reference
        if (own := self.judge.own_verdict(model)) is not None:
            return own
        ref_answer, ref_text = (None, None) if model == reference else answers.get(
            reference, (None, None))
        return await self.judge.grade(query, answer, ref_answer, answer_text=text,
                                      reference_text=ref_text)

    def _count_judge_failures(self) -> None:
        for kind, n in (self.judge.failures - self._judge_failures).items():
            metrics.JUDGE_FAILURES.labels(kind).inc(n)
        self._judge_failures = Counter(self.judge.failures)
