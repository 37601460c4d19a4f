"""`routed`: a router picks the first rung, then optimal stopping climbs from there
(theory.md §4.9).

Per query the router (prompt features only) names the rung to start at; the threshold
cascade of the chain chosen for that start decides after each rung whether to stop or
climb. A cascade that always starts at its cheapest rung and a router whose chains are
one model long are both special cases, and both are candidates, so on the training folds
`routed` is never worse than either.

The start is routed at λ·m for m in `start_prices`: a cascade catches some of a cheap
start's errors, so routing more queries low than the plain router would can pay. For every
start price, each start's chain is the candidate (a cost-ordered chain beginning at that
model) with the best held-out objective on the training queries routed there. Stopping
thresholds are fitted on every training query (the rule reads the rung's own signals;
the routed subsets are often too small to fit on). Every choice is made on held-out
folds of the training split (out-of-fold router scores, cross-fitted thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy

import numpy as np
from sklearn.base import BaseEstimator

from ladder.policies.base import Outcome
from ladder.policies.chains import candidate_chains
from ladder.policies.router import Router, RouterCache
from ladder.policies.stages import ALPHAS, PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import QueryTable

START_PRICES = (1.0, 2.0, 4.0)


def _take(outcome: Outcome, rows: np.ndarray) -> Outcome:
    return Outcome(outcome.chosen[rows], outcome.last_run[rows], outcome.quality[rows],
                   outcome.cost[rows])


def scatter(n: int, pieces: Sequence[tuple[np.ndarray, Outcome]]) -> Outcome:
    """One outcome over n queries from pieces covering disjoint rows (row indices, the
    outcome of exactly those rows)."""
    chosen, last_run = np.empty(n, dtype=int), np.empty(n, dtype=int)
    quality, cost = np.empty(n), np.empty(n)
    for rows, part in pieces:
        chosen[rows], last_run[rows] = part.chosen, part.last_run
        quality[rows], cost[rows] = part.quality, part.cost
    return Outcome(chosen, last_run, quality, cost)


class RoutedCascade(BaseEstimator):
    """Route to a first rung, then climb with that start's threshold cascade.

    lam: price of one unit of cost; max_stages: longest chain searched; alphas: plug-in
    weights tried for the cascades (theory §9); start_prices: multiples of λ the start is
    routed at; variants: the router's quality-model variants (None: its defaults).
    Fitted: `router_` (routing at λ·`start_price_`, or None when no routing won),
    `plans_` (start model → fitted ThresholdCascade), `choice_`, `held_out_`,
    `train_objective_`.
    """

    family = "routed"

    def __init__(self, lam: float = 0.0, max_stages: int = 3, predictor: str = "logistic",
                 alphas: Sequence[float] = ALPHAS, start_prices: Sequence[float] = START_PRICES,
                 variants: Sequence[str] | None = None):
        self.lam = lam
        self.max_stages = max_stages
        self.predictor = predictor
        self.alphas = alphas
        self.start_prices = start_prices
        self.variants = variants

    def fit(self, table: QueryTable, cache: PredictorCache | None = None,
            router_cache: RouterCache | None = None) -> RoutedCascade:
        cache = cache or PredictorCache(table, self.predictor)
        if router_cache is None or not router_cache.serves(table):
            router_cache = RouterCache(table, self.variants)
        router = Router(self.lam, self.variants).fit(table, router_cache)
        oof = router_cache.fitted[router.variant_][1]
        cost_hat = router_cache.cost.predict_lengths(table.prompt_len, table.n)
        chains = [ThresholdCascade(list(chain), self.lam, self.predictor, alpha).fit(table, cache)
                  for chain in candidate_chains(table.models, self.max_stages)
                  for alpha in self.alphas]
        unrouted = max(chains, key=lambda p: p.train_objective_)  # ties: the first
        best = (unrouted.train_objective_, None, {table.index(unrouted.chain_[0]): unrouted},
                unrouted.held_out_)
        for price in self.start_prices:
            starter = copy(router).set_params(lam=self.lam * price)
            starts = starter.pick(oof, cost_hat)
            plans = {}
            for start in np.unique(starts):
                rows = starts == start
                here = [p for p in chains if p.chain_[0] == table.models[start]]
                plans[int(start)] = max(
                    here, key=lambda p: _take(p.held_out_, rows).objective(self.lam))
            outcome = scatter(table.n, [(np.flatnonzero(starts == s), _take(p.held_out_,
                                                                            starts == s))
                                        for s, p in plans.items()])
            objective = outcome.objective(self.lam)
            if objective > best[0]:
                best = (objective, price, plans, outcome)
        self.train_objective_, self.start_price_, plans, self.held_out_ = best
        self.router_ = None if self.start_price_ is None else \
            copy(router).set_params(lam=self.lam * self.start_price_)
        self.plans_ = {table.models[s]: p for s, p in plans.items()}
        self.choice_ = {
            "kind": "routed", "start_price": self.start_price_,
            "router": None if self.router_ is None else router.variant_,
            "chains": {s: list(p.chain_) for s, p in self.plans_.items()},
            "alphas": {s: p.alpha for s, p in self.plans_.items()},
        }
        self.chain_ = tuple(m for m in table.models
                            if any(m in p.chain_ for p in self.plans_.values()))
        return self

    def starts(self, table: QueryTable) -> np.ndarray:
        """Per query, the index into `table.models` of the rung it starts at."""
        if self.router_ is None:
            (only,) = self.plans_
            return np.full(table.n, table.index(only))
        return self.router_.choose(table)

    def plan(self, start: str) -> ThresholdCascade:
        """The cascade that climbs from `start` (a start no training query was routed to
        falls back to the nearest dearer start's cascade, else the dearest one)."""
        if start in self.plans_:
            return self.plans_[start]
        order = list(self.router_.models_) if self.router_ is not None else list(self.plans_)
        dearer = [s for s in self.plans_ if order.index(s) > order.index(start)]
        return self.plans_[min(dearer, key=order.index) if dearer else
                           max(self.plans_, key=order.index)]

    def replay(self, table: QueryTable, cache: PredictorCache | None = None) -> Outcome:
        """Route every query of a log, then replay each start's cascade on its queries."""
        starts = self.starts(table)
        pieces = []
        for start in np.unique(starts):
            rows = np.flatnonzero(starts == start)
            pieces.append((rows, self.plan(table.models[start]).replay(table.rows(rows), cache)))
        return scatter(table.n, pieces)
