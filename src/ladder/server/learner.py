"""The online learner every replica shares through the database (theory.md §6).

What each replica holds in memory: one `LearnedCascade` per online policy (the fitted
predictors and thresholds of its last refit, the number of queries served by all
replicas at the last sync, and its own count since) and nothing of the traffic. What is
shared: the database's requests, stages and feedback. At each sync a replica asks the
store how many requests of the policy are labelled; when the refit schedule says so it
reads the newest `window` requests, replays them through a fresh `OnlineCascade`
(observe in order, then the labels), refits once and swaps the new snapshot in. Every
replica therefore learns from every replica's feedback, with memory bounded by `window`.

Feedback labels the model that answered (the stage whose answer was returned) or, when it
names one, another stage that ran; only models that ran get a label: the partial feedback
OnlineCascade is built for. A client who labels only what it was shown teaches the learner
about the answers returned; a grader that also labels the cheap stages' answers (each is in
`ladder.stages`) lets it learn where the cheap rung would have sufficed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ladder.config import ConfigError, OnlineSpec
from ladder.online import OWN_TASK, OnlineCascade, exploration_rate
from ladder.policies.stages import StageDecision
from ladder.policies.threshold import ThresholdRule
from ladder.predictors import QualityPredictor
from ladder.runlog import RunLogError, load_runlog
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable
from ladder.server import metrics
from ladder.server.store import Served, Store

ONLINE_INPUTS = ("prompt", "answers")  # what OnlineCascade's history always records


class LearnedCascade(ThresholdRule):
    """A snapshot of an online policy that `ladder.runtime.Cascade` runs like any fitted
    cascade: stop when the stage's score reaches its threshold, except that a stop is
    overridden (escalate) with probability ε_t = min(1, c/√t), t = the queries this policy
    has served on all replicas (`served_` at the last sync, `local_` begun here since).
    Unfitted (no warm start, too few labels), it escalates at every rung."""

    family = "online"

    def __init__(self, chain: Sequence[str], c: float, served: int = 0,
                 predictors: list[QualityPredictor] | None = None,
                 thresholds: np.ndarray | None = None, random_state: int = 0):
        self.chain_ = tuple(chain)
        self.c = c
        self.predictors_ = predictors
        self.thresholds_ = thresholds
        self.inputs_ = ONLINE_INPUTS
        self.served_ = served
        self.local_ = 0
        self.rng_ = np.random.default_rng(random_state)

    @classmethod
    def from_online(cls, online: OnlineCascade, served: int, random_state: int = 0
                    ) -> LearnedCascade:
        return cls(online.chain, online.c, served, online.predictors_, online.thresholds_,
                   random_state)

    @property
    def fitted(self) -> bool:
        return self.predictors_ is not None

    @property
    def t_(self) -> int:
        return self.served_ + self.local_

    def step(self, table: QueryTable, stage: int,
             earlier_scores: np.ndarray | None = None) -> StageDecision:
        """ChainPolicy.step on the learner's task (the served queries' pooled task, as
        OnlineCascade decides them), or escalate while unfitted."""
        if stage == 0:
            self.local_ += table.n
        last = stage == len(self.chain_) - 1
        if not self.fitted:
            return StageDecision(np.full(table.n, last), np.full((table.n, stage + 1), np.nan),
                                 None, np.full(table.n, stage))
        table = replace(table, benchmark=np.full(table.n, OWN_TASK, dtype=object))
        return super().step(table, stage, earlier_scores)

    def _stops(self, stage: int, scores: np.ndarray,
               features: np.ndarray | None) -> tuple[np.ndarray, None]:
        stop, _ = super()._stops(stage, scores, features)
        explore = self.rng_.random(len(stop)) < exploration_rate(self.t_, self.c)
        return stop & ~explore, None


class SharedLearner:
    """One online policy's learner (see the module docstring). `policy` is the current
    snapshot: read it per request (a sync replaces the object, never mutates its fit).

    refit_growth: the schedule's growth (OnlineCascade's); a refit follows
    max(refit_every, min(refit_growth × labels, window)) new labels, so a long-running
    policy still refits at least once per window of labels."""

    def __init__(self, name: str, spec: OnlineSpec, base_dir: Path = Path("."), *,
                 refit_growth: float = 0.25, warm_weight: int = 100, random_state: int = 0):
        self.name = name
        self.spec = spec
        self.refit_growth = refit_growth
        self.warm_weight = warm_weight
        self.random_state = random_state
        self.warm_ = _warm_table(name, spec, base_dir)
        online = self._online(spec.refit_every)  # fitted at once on a warm start
        self.policy = LearnedCascade.from_online(online, 0, random_state)
        self.next_refit_ = spec.refit_every  # labels in the store that trigger a refit
        self.last_feedback_ = 0  # the newest feedback id the last rebuild saw
        self.n_refits_ = 0
        self._publish()

    def _online(self, refit_every: int) -> OnlineCascade:
        spec = self.spec
        return OnlineCascade(spec.chain, spec.lam, c=spec.exploration, refit_every=refit_every,
                             refit_growth=self.refit_growth, warm_start=self.warm_,
                             warm_weight=self.warm_weight, random_state=self.random_state)

    async def sync(self, store: Store) -> bool:
        """Catch up with the store: always the served count (for ε_t), and a refit on the
        newest `window` requests when enough new labels arrived; True when a new snapshot
        was swapped in. Database work and the refit run in worker threads. Raises
        StoreError when the database is unreachable (the current snapshot keeps serving)."""
        stats = await asyncio.to_thread(store.feedback_stats, self.name)
        self.policy.served_, self.policy.local_ = stats.served, 0
        if stats.labelled < self.next_refit_ or stats.last_feedback == self.last_feedback_:
            return False
        snapshot = await asyncio.to_thread(self.rebuild, store, stats.served)
        self.last_feedback_ = stats.last_feedback
        if snapshot is None:  # some rung still lacks a label of each kind: wait for more
            return False
        self.policy = snapshot
        self.n_refits_ += 1
        metrics.REFITS.labels(self.name).inc()
        self._publish()
        growth = min(int(self.refit_growth * stats.labelled), self.spec.window)
        self.next_refit_ = stats.labelled + max(self.spec.refit_every, growth)
        return True

    def _publish(self) -> None:
        """The snapshot's thresholds in /metrics, where an operator sees them move."""
        thresholds = self.policy.thresholds_
        for stage, value in enumerate([] if thresholds is None else thresholds):
            metrics.THRESHOLD.labels(self.name, str(stage)).set(float(value))

    def rebuild(self, store: Store, served: int) -> LearnedCascade | None:
        """A snapshot refitted on the newest `window` requests (blocking), or None when
        they cannot be fitted yet."""
        history = list(store.served(self.name, self.spec.window))
        online = self._online(len(history) + 1)  # no scheduled refit while replaying
        for request in history:
            replay(online, request)
        if not online.refit():
            return None
        return LearnedCascade.from_online(online, served, self.random_state)


def replay(online: OnlineCascade, request: Served) -> None:
    """Feed one stored request to an OnlineCascade: the rungs that ran (served or in a
    shadow run) in chain order, up to the first the request lacks, then the labels of those
    of them that got one (the answer returned, any stage a grader labelled by name, a shadow
    run's judge)."""
    by_model = {stage.model: stage for stage in request.stages}
    ran: list[str] = []
    for model in online.chain:
        stage = by_model.get(model)
        if stage is None:
            break
        signals = {name: stage.signals.get(name, math.nan) for name in SIGNAL_COLUMNS}
        signals["tokens_out"] = stage.tokens_out
        online.observe(request.id, len(ran), stage.cost, signals, stage.answer,
                       request.prompt_len)
        ran.append(stage.model)
    for model, quality in request.labels.items():
        if model in ran:
            online.update(request.id, model, quality)


def _warm_table(name: str, spec: OnlineSpec, base_dir: Path) -> QueryTable | None:
    if spec.warm_start is None:
        return None
    path = spec.warm_start if spec.warm_start.is_absolute() else base_dir / spec.warm_start
    try:
        return QueryTable.from_runlog(load_runlog(path), models=list(spec.chain))
    except RunLogError as error:
        raise ConfigError(f"policy '{name}': warm_start {path}: {error}") from None
