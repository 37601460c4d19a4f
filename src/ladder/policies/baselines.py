"""Reference policies every cascade is judged against (theory.md §4.1–4.3)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ladder.policies.base import Outcome, best_model, single_model
from ladder.runlog.table import QueryTable


class FixedModel(BaseEstimator):
    """Always the same model."""

    family = "fixed"

    def __init__(self, model: str | None = None):
        self.model = model

    def fit(self, table: QueryTable, cache: object = None) -> FixedModel:
        self.model_ = self.model if self.model is not None else table.models[-1]
        table.index(self.model_)
        return self

    def replay(self, table: QueryTable, cache: object = None) -> Outcome:
        return single_model(table, table.index(self.model_))


class RandomMix(BaseEstimator):
    """Per query, a model drawn at random: the cheapest with probability 1 − p, the most
    accurate (on the training split) with probability p, p set so the expected training
    cost equals `target_cost`. The cost-matched 'no information' baseline."""

    family = "random"

    def __init__(self, target_cost: float = 0.0, random_state: int = 0):
        self.target_cost = target_cost
        self.random_state = random_state

    def fit(self, table: QueryTable, cache: object = None) -> RandomMix:
        costs, qualities = table.mean_cost(), table.mean_quality()
        cheap = int(np.lexsort((-qualities, costs))[0])  # cheapest; ties to the better one
        best = best_model(qualities, costs)
        self.models_ = (table.models[cheap], table.models[best])
        span = costs[best] - costs[cheap]
        p = (self.target_cost - costs[cheap]) / span if span > 0 else 1.0
        self.p_expensive_ = float(np.clip(p, 0.0, 1.0))
        return self

    def replay(self, table: QueryTable, cache: object = None) -> Outcome:
        rng = np.random.default_rng(self.random_state)
        cheap, best = (table.index(m) for m in self.models_)
        pick = np.where(rng.random(table.n) < self.p_expensive_, best, cheap)
        rows = np.arange(table.n)
        return Outcome(pick, pick, table.quality[rows, pick], table.cost[rows, pick])


class Oracle(BaseEstimator):
    """Knows every model's quality in advance: per query the model maximising
    q − λ·c (ties to the cheapest). Not deployable; the physical limit."""

    family = "oracle"

    def __init__(self, lam: float = 0.0):
        self.lam = lam

    def fit(self, table: QueryTable, cache: object = None) -> Oracle:
        self.models_ = table.models
        return self

    def replay(self, table: QueryTable, cache: object = None) -> Outcome:
        utility = table.quality - self.lam * table.cost
        # among equal utilities prefer the cheaper model
        order = np.argsort(table.cost, axis=1, kind="stable")
        ranked = np.take_along_axis(utility, order, axis=1)
        pick = order[np.arange(table.n), ranked.argmax(axis=1)]
        rows = np.arange(table.n)
        return Outcome(pick, pick, table.quality[rows, pick], table.cost[rows, pick])
