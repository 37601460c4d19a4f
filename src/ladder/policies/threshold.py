"""Threshold cascade: stop at stage i when predicted quality ≥ θ_i (theory.md §3).

The thresholds maximise the empirical J_λ on the training split exactly, one
stage at a time (coordinate ascent): for a stage, the queries that reach it are
sorted by score and the best cut is found in one pass of prefix sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from ladder.policies.base import held_out_folds, resolve_chain, run_cascade
from ladder.policies.stages import ChainPolicy, PredictorCache, answer_codes
from ladder.runlog.table import QueryTable


def stage_rewards(table: QueryTable, chain: Sequence[int], lam: float,
                  quality: np.ndarray | None = None,
                  returned: np.ndarray | None = None) -> np.ndarray:
    """(n, r) reward of stopping after each stage: the returned answer's quality minus λ ×
    everything paid. quality: (n, k) values to use instead of the labels (plug-in targets);
    returned: (n, r) chain positions returned at each stage (default: the stage's own)."""
    values = (table.quality if quality is None else quality)[:, list(chain)]
    if returned is not None:
        values = np.take_along_axis(values, returned, axis=1)
    return values - lam * np.cumsum(table.cost[:, chain], axis=1)


def _follow(scores: np.ndarray, thresholds: np.ndarray, start: int) -> np.ndarray:
    """Stage at which each query stops when entering the cascade at `start`."""
    stop = scores[:, start:] >= thresholds[start:]
    stop[:, -1] = True
    return start + stop.argmax(axis=1)


def _best_cut(scores: np.ndarray, gain: np.ndarray) -> float:
    """Threshold t maximising the sum of `gain` over rows with score ≥ t (cuts between
    distinct scores only)."""
    if len(scores) == 0:
        return np.inf
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], np.cumsum(gain[order])
    distinct_end = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    totals = np.r_[0.0, g[distinct_end]]
    best = int(np.argmax(totals))
    if best == 0:
        return np.inf
    end = distinct_end[best - 1]
    below = s[end + 1] if end + 1 < len(s) else -np.inf
    return float((s[end] + below) / 2) if np.isfinite(below) else float(s[end] - 1e-9)


def fit_thresholds(scores: np.ndarray, rewards: np.ndarray, max_sweeps: int = 20,
                   unreached: str = "escalate") -> np.ndarray:
    """Per-stage thresholds maximising mean reward (last stage always stops).

    unreached: the cut of a stage no row reaches: 'escalate' (inf; it never matters on
    these rows) or 'fit' (fitted on every row, as if all reached it). 'fit' avoids a fixed
    point of the coordinate ascent where an unreached stage escalates to the most expensive
    model, which makes escalating to it look worse than it is, so no row reaches it again."""
    n, r = scores.shape
    thresholds = np.full(r, np.inf)
    thresholds[-1] = -np.inf
    rows = np.arange(n)
    for _ in range(max_sweeps):
        previous = thresholds.copy()
        for i in range(r - 2, -1, -1):
            reach = np.ones(n, bool) if i == 0 else _follow(scores, thresholds, 0) >= i
            if unreached == "fit" and not reach.any():
                reach = np.ones(n, bool)
            later = _follow(scores[reach], thresholds, i + 1)
            gain = rewards[reach, i] - rewards[rows[reach], later]
            thresholds[i] = _best_cut(scores[reach, i], gain)
        if np.array_equal(previous, thresholds):
            break
    return thresholds


def shadow_prices(scores: np.ndarray, quality: np.ndarray, paid: np.ndarray,
                  thresholds: np.ndarray, band: float = 0.1) -> np.ndarray:
    """Marginal quality per marginal cost at each stage boundary (theory.md §3 check).

    For the queries reaching stage i whose scores lie closest to θ_i (the `band` share,
    at least 10), Δq/Δc of escalating them rather than stopping. At the optimum every
    boundary trades at the same rate, λ. NaN where the boundary is unused (θ = ±inf).
    quality: (n, r) quality of each stage; paid: (n, r) cumulative cost."""
    r = scores.shape[1]
    rates = np.full(r - 1, np.nan)
    stop_stage = _follow(scores, thresholds, 0)
    for i in range(r - 1):
        reach = np.flatnonzero(stop_stage >= i)
        if not np.isfinite(thresholds[i]) or len(reach) == 0:
            continue
        m = min(len(reach), max(10, int(band * len(reach))))
        near = reach[np.argsort(np.abs(scores[reach, i] - thresholds[i]), kind="stable")[:m]]
        later = _follow(scores[near], thresholds, i + 1)
        d_quality = (quality[near, later] - quality[near, i]).mean()
        d_cost = (paid[near, later] - paid[near, i]).mean()
        rates[i] = d_quality / d_cost if d_cost > 0 else np.nan
    return rates


class ThresholdRule(ChainPolicy):
    """Stop when the current stage's score reaches its threshold (`thresholds_`)."""

    thresholds_: np.ndarray
    uses_features = False

    def _stops(self, stage: int, scores: np.ndarray,
               features: np.ndarray | None) -> tuple[np.ndarray, None]:
        return scores[:, -1] >= self.thresholds_[stage], None


class ThresholdCascade(ThresholdRule, BaseEstimator):
    """Stop when the stage's predicted quality reaches its fitted threshold.

    chain: model names in order (None: the whole ladder); lam: price of one unit of cost;
    alpha: weight of the labels in the plug-in tuning target α·label + (1 − α)·p̂
    (theory.md §9; 1 = labels only); vote: return the weighted vote of the stages run.
    """

    family = "threshold"

    def __init__(self, chain: Sequence[str] | None = None, lam: float = 0.0,
                 predictor: str = "logistic", alpha: float = 1.0, vote: bool = False):
        self.chain = chain
        self.lam = lam
        self.predictor = predictor
        self.alpha = alpha
        self.vote = vote

    def fit(self, table: QueryTable, cache: PredictorCache | None = None) -> ThresholdCascade:
        chain = resolve_chain(table, self.chain)
        cache = cache or PredictorCache(table, self.predictor)
        scores = cache.scores(table, chain)
        self._fit_chain(table, chain, cache)
        returned = self.returned_positions(scores, answer_codes(table, chain))
        rewards = stage_rewards(table, chain, self.lam, cache.targets(table, self.alpha),
                                returned)
        judge = cache.targets(table, 1.0)  # labels, and p̂ where a label is missing
        judged = stage_rewards(table, chain, self.lam, judge, returned)
        self.thresholds_ = fit_thresholds(scores, rewards)
        # judged on held-out folds, so a chain search is not won in-sample; the per-query
        # held-out outcome is also what an operating point is certified on (theory.md §10)
        stage = np.empty(table.n, dtype=int)
        for fit_rows, held in held_out_folds(table.n):
            thresholds = fit_thresholds(scores[fit_rows], rewards[fit_rows])
            stage[held] = _follow(scores[held], thresholds, 0)
        stop = np.zeros_like(scores, dtype=bool)
        stop[np.arange(table.n), stage] = True
        self.held_out_ = run_cascade(table, chain, stop, returned, quality=judge)
        self.train_objective_ = self.held_out_.objective(self.lam)
        self.shadow_prices_ = shadow_prices(
            scores, judged + self.lam * np.cumsum(table.cost[:, chain], axis=1),
            np.cumsum(table.cost[:, chain], axis=1), self.thresholds_,
        )
        return self
