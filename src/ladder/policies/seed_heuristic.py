"""The seeds' closed-form thresholds, kept as a named baseline (seeds 000 and 001).

These formulas are not derived from the objective (see shared seeds README); they
are here so the fitted policies can be compared with what the seed papers propose.
Their λ is the seeds' own knob (larger = prefer quality), not theory.md's price of cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from ladder.policies.base import resolve_chain
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdRule
from ladder.runlog.table import QueryTable

FORMULAS = ("001", "000")


def seed_thresholds(formula: str, lam: float, costs: np.ndarray,
                    next_quality: np.ndarray) -> np.ndarray:
    """Per-stage thresholds; the last stage always stops.

    001 (`compute_threshold`): θ_i = 1/(1+λ) · (1 − 0.5 · c_i / c_{i+1}).
    000: θ_i = (V_{i+1} + λ c_i) / (1 + λ (c_{i+1} − c_i)), V_{i+1} the next stage's
    mean training quality and costs in units of the first stage's cost.
    """
    c = costs / costs[0] if costs[0] > 0 else costs + 1.0
    r = len(c)
    thresholds = np.full(r, -np.inf)
    for i in range(r - 1):
        if formula == "001":
            ratio = c[i + 1] / c[i] if c[i] > 0 else np.inf
            thresholds[i] = (1.0 / (1.0 + lam)) * (1.0 - 0.5 / ratio)
        elif formula == "000":
            thresholds[i] = (next_quality[i] + lam * c[i]) / (1.0 + lam * (c[i + 1] - c[i]))
        else:
            raise ValueError(f"unknown seed formula '{formula}'; choose one of {FORMULAS}")
    return thresholds


class SeedHeuristic(ThresholdRule, BaseEstimator):
    """Stop when predicted quality ≥ the seed formula's threshold (same predictors as the
    fitted cascades, so only the decision rule differs)."""

    family = "seed_heuristic"

    def __init__(self, chain: Sequence[str] | None = None, lam: float = 1.0,
                 formula: str = "001", predictor: str = "logistic"):
        self.chain = chain
        self.lam = lam
        self.formula = formula
        self.predictor = predictor

    def fit(self, table: QueryTable, cache: PredictorCache | None = None) -> SeedHeuristic:
        chain = resolve_chain(table, self.chain)
        cache = cache or PredictorCache(table, self.predictor)
        costs = table.mean_cost()[chain]
        next_quality = np.r_[table.mean_quality()[chain][1:], np.nan]
        self._fit_chain(table, chain, cache)
        self.thresholds_ = seed_thresholds(self.formula, self.lam, costs, next_quality)
        return self
