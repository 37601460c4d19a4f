"""Online learning with measured regret (theory.md §6).

A logged table is replayed as a stream: queries in a random order, each served by the
online learner rung by rung, and only the cells of the rungs it chose to run are revealed
(`PartialFeedback`). Regret R(T) = Σ_t [J_λ(π*, x_t) − J_λ(π_t, x_t)], with π* the
threshold cascade on the same chain fitted in hindsight on the whole stream (its
cross-fitted scores and in-sample thresholds: the best of the class on these queries).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from scipy import stats
from threadpoolctl import threadpool_limits

from ladder.online import OnlineCascade
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable

LearnerFactory = Callable[[int], OnlineCascade]  # random_state → a fresh learner


class PartialFeedback:
    """A logged table served to a learner: a rung's cost, signals and answer are read only
    when the learner has chosen to run it, and labels only for rungs that ran."""

    def __init__(self, table: QueryTable, chain: tuple[str, ...]):
        self.table = table
        self.chain = [table.index(m) for m in chain]
        self.names = tuple(chain)

    def _observe(self, learner: OnlineCascade, row: int, stage: int) -> None:
        t, m = self.table, self.chain[stage]
        learner.observe(
            t.query_ids[row], stage, float(t.cost[row, m]),
            {name: float(t.signals[name][row, m]) for name in SIGNAL_COLUMNS},
            None if t.answers is None or t.answers[row, m] < 0 else int(t.answers[row, m]),
            None if t.prompt_len is None else float(t.prompt_len[row]),
        )

    def serve(self, learner: OnlineCascade, row: int, label: bool = True) -> tuple[float, int]:
        """Run one query through the learner; its reward q − λ·C and the last rung run.
        label: reveal the run rungs' qualities to the learner afterwards."""
        query = self.table.query_ids[row]
        stage, paid = 0, 0.0
        while True:
            self._observe(learner, row, stage)
            paid += float(self.table.cost[row, self.chain[stage]])
            if learner.decide(query):
                break
            stage += 1
        qualities = [float(self.table.quality[row, self.chain[s]]) for s in range(stage + 1)]
        if label:
            for s, q in enumerate(qualities):
                learner.update(query, self.names[s], q)
        return qualities[-1] - learner.lam * paid, stage


def hindsight_rewards(table: QueryTable, chain: tuple[str, ...], lam: float) -> np.ndarray:
    """Per-query q − λ·C of π*, the threshold cascade on `chain` fitted on all of `table`."""
    cache = PredictorCache(table)
    outcome = ThresholdCascade(list(chain), lam).fit(table, cache).replay(table, cache)
    return outcome.quality - lam * outcome.cost


@dataclass(frozen=True)
class Ordering:
    """One stream: per-query rewards of the learner (and of π*), labels seen, and — when
    frozen at query `at` — the rewards on the later queries of the learner as it was then
    and of an offline cascade fitted on as many labels (fully labelled first queries)."""

    reward: np.ndarray
    best: np.ndarray
    labels: np.ndarray
    frozen: np.ndarray | None = None
    offline: np.ndarray | None = None


def run_ordering(table: QueryTable, factory: LearnerFactory, best: np.ndarray, seed: int,
                 frozen_at: int | None = None) -> Ordering:
    """Stream `table` in a seeded random order through a fresh learner (one BLAS thread:
    orderings run in parallel processes)."""
    with threadpool_limits(1):
        return _run_ordering(table, factory, best, seed, frozen_at)


def _run_ordering(table: QueryTable, factory: LearnerFactory, best: np.ndarray, seed: int,
                  frozen_at: int | None) -> Ordering:
    learner = factory(seed)
    env = PartialFeedback(table, tuple(learner.chain))
    order = np.random.default_rng(seed).permutation(table.n)
    reward, labels = np.empty(table.n), np.empty(table.n, dtype=int)
    frozen = offline = None
    for t, row in enumerate(order):
        reward[t] = env.serve(learner, row)[0]
        labels[t] = learner.n_labels_
        if frozen_at is not None and t + 1 == frozen_at:
            snapshot = deepcopy(learner)
            snapshot.c, snapshot.next_refit_ = 0.0, np.inf
            later = order[frozen_at:]
            frozen = np.array([env.serve(snapshot, row, label=False)[0] for row in later])
            seen = table.rows(order[: max(10, labels[t] // len(learner.chain))])
            fitted = ThresholdCascade(list(learner.chain), learner.lam).fit(seen)
            out = fitted.replay(table.rows(later))
            offline = out.quality - learner.lam * out.cost
    return Ordering(reward, best[order], labels, frozen, offline)


@dataclass(frozen=True)
class RegretRun:
    """Orderings of one stream. regret: (orderings, T) cumulative R(t); best_objective:
    J_λ(π*) on the stream."""

    orderings: list[Ordering]
    best_objective: float

    @property
    def regret(self) -> np.ndarray:
        return np.cumsum([o.best - o.reward for o in self.orderings], axis=1)

    @property
    def T(self) -> int:
        return self.regret.shape[1]


def simulate(table: QueryTable, learner_factory: LearnerFactory, lam: float,
             orderings: int = 20, seed: int = 0, frozen_at: int | None = None,
             n_jobs: int = 1) -> RegretRun:
    """Regret of `learner_factory`'s learners over `orderings` random orders of `table`
    (ordering i uses seed + i for the order and the learner); lam must be the learners'."""
    chain = tuple(learner_factory(seed).chain)
    best = hindsight_rewards(table, chain, lam)
    runs = Parallel(n_jobs=n_jobs)(
        delayed(run_ordering)(table, learner_factory, best, seed + i, frozen_at)
        for i in range(orderings))
    return RegretRun(list(runs), float(best.mean()))


def growth_exponent(regret: np.ndarray, start: float = 0.5) -> np.ndarray:
    """Per ordering, the log-log slope of R(t) over t ≥ start·T (NaN where R ≤ 0 there)."""
    T = regret.shape[1]
    t = np.arange(1, T + 1)
    window = t >= start * T
    slopes = []
    for r in regret:
        keep = window & (r > 0)
        slopes.append(np.polyfit(np.log(t[keep]), np.log(r[keep]), 1)[0]
                      if keep.sum() >= 10 else np.nan)
    return np.array(slopes)


def sqrt_log_ratio(regret: np.ndarray) -> np.ndarray:
    """R(t)/(√t·log t) for t ≥ 2 (column t−2)."""
    t = np.arange(2, regret.shape[1] + 1)
    return regret[:, 1:] / (np.sqrt(t) * np.log(t))


def band(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 10–90% quantiles across orderings (NaN where none is defined)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN is the answer
        return (np.nanmean(values, axis=axis), np.nanquantile(values, 0.1, axis=axis),
                np.nanquantile(values, 0.9, axis=axis))


def paired_interval(diff: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its t interval."""
    diff = np.asarray(diff, dtype=float)
    half = stats.t.ppf(0.5 + level / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def summary(run: RegretRun) -> dict:
    """The headline numbers of one run: R(T)/T relative to J(π*), R(T)/(√T log T) at the
    end, the growth exponent with its 10–90% band."""
    R = run.regret
    end = R[:, -1] / run.T
    exponent = growth_exponent(R)
    ratio = sqrt_log_ratio(R)
    return {
        "T": run.T, "best_objective": run.best_objective,
        "regret_per_query": band(end), "relative": band(end / abs(run.best_objective)),
        "sqrt_log_ratio_end": band(ratio[:, -1]),
        "sqrt_log_ratio_max": band(ratio[:, min(8, ratio.shape[1] - 1):].max(axis=1)),
        "exponent": band(exponent), "exponent_defined": int(np.isfinite(exponent).sum()),
        "mean_exponent": float(growth_exponent(R.mean(axis=0)[None])[0]),
        "labels_per_query": float(np.mean([o.labels[-1] for o in run.orderings]) / run.T),
    }


WARM_FROM = {"mmlu": "medmcqa", "medmcqa": "mmlu", "triviaqa": "gsm8k", "gsm8k": "mmlu"}
C_GRID = (0.1, 0.25, 0.5, 1.0, 2.0)  # exploration constants tried on the train stream
WARM_WEIGHTS = (100, 300)  # how many queries the warm prior is worth


@dataclass(frozen=True)
class Learner:
    """A picklable learner factory (joblib sends it to worker processes)."""

    chain: tuple[str, ...]
    lam: float
    params: tuple[tuple[str, object], ...] = ()
    warm: QueryTable | None = None

    def __call__(self, seed: int) -> OnlineCascade:
        return OnlineCascade(list(self.chain), self.lam, warm_start=self.warm,
                             random_state=seed, **dict(self.params))


def mean_reward(run: RegretRun) -> float:
    """Mean J_λ per query over every ordering of a run."""
    return float(np.mean([o.reward.mean() for o in run.orderings]))


def tune(train: QueryTable, prior: QueryTable | None, chain: tuple[str, ...], lam: float,
         orderings: int, fixed: dict | None = None,
         n_jobs: int = 1) -> tuple[float, int | None, list[str]]:
    """The exploration constant c, then the warm weight (when a prior is given), with the
    best mean reward per query on streams of the *train* split; and the search's log lines.
    The refit schedule is not tuned (it only trades compute for how fresh the fit is):
    `fixed` holds it and any other settings every candidate shares."""
    def score(params: dict, warm: QueryTable | None) -> float:
        learner = Learner(chain, lam, tuple({**(fixed or {}), **params}.items()), warm)
        return mean_reward(simulate(train, learner, lam, orderings, seed=10_000,
                                    n_jobs=n_jobs))

    cold = {c: score({"c": c}, None) for c in C_GRID}
    c = max(cold, key=cold.get)
    lines = [f"c={x}: {v:.4f}" for x, v in cold.items()]
    if prior is None:
        return c, None, lines
    warm = {w: score({"c": c, "warm_weight": w}, prior) for w in WARM_WEIGHTS}
    lines += [f"warm_weight={w}: {v:.4f}" for w, v in warm.items()]
    return c, max(warm, key=warm.get), lines
