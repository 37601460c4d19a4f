"""Seed 003's comparison: every two-model cascade, their upper envelope, and the rest.

Seed 003 says the frontier of deterministic two-model threshold cascades is the
pointwise envelope of the C(k, 2) pairwise frontiers, that the full fixed chain falls
below it, that best-subsequence cascades add little, and that a pre-generation router
beats them all because a cascade always pays its cheap model first. This module fits
each pair over the λ sweep (train), replays it (test) and summarises the pairs, their
envelope and the full chain with the same frontier metrics as `evaluate`.

Why a router wins, when it does, is split two ways (`structural_check`): a cascade
whose cheap first stage is refunded on the queries it escalates (what a cascade would
cost if it knew in advance) against the router, and the strength of the two signals
(AUROC of the router's pre-generation prediction of the first model's correctness
against the cascade's post-generation one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from sklearn.metrics import roc_auc_score

from ladder.evaluate.experiment import PolicyPoint, oracle_hull, summarise
from ladder.policies.base import Outcome
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import QueryTable


@dataclass(frozen=True)
class Frontier:
    """One policy set's test points over the λ sweep, and its frontier metrics."""

    name: str
    points: list[PolicyPoint]
    outcomes: list[Outcome]
    summary: dict
    objectives: tuple[float, ...] = ()  # per point: held-out objective on train folds


def _models(test: QueryTable) -> list[dict]:
    return [{"name": m, "cost": float(c), "quality": float(q)}
            for m, c, q in zip(test.models, test.mean_cost(), test.mean_quality(), strict=True)]


def chain_frontier(name: str, chain: Sequence[str], train: QueryTable, test: QueryTable,
                   lambdas: Sequence[float], cache: PredictorCache) -> Frontier:
    """A threshold cascade over a fixed chain, fitted at each λ on train, on test."""
    points, outcomes, objectives = [], [], []
    for lam in lambdas:
        policy = ThresholdCascade(list(chain), float(lam)).fit(train, cache)
        outcome = policy.replay(test, cache)
        on_train = policy.replay(train, cache)
        rates = tuple(None if np.isnan(x) else float(x) for x in policy.shadow_prices_)
        points.append(PolicyPoint(name, float(lam), outcome.mean_cost, outcome.mean_quality,
                                  on_train.mean_cost, on_train.mean_quality, tuple(chain),
                                  outcome.stage_mix(test.models), rates))
        outcomes.append(outcome)
        objectives.append(float(policy.train_objective_))
    return Frontier(name, points, outcomes,
                    summarise(points, _models(test), oracle_hull(test, lambdas)),
                    tuple(objectives))


def pair_frontiers(train: QueryTable, test: QueryTable, lambdas: Sequence[float],
                   cache: PredictorCache) -> list[Frontier]:
    """The threshold cascade of every pair of models, cheaper one first (by train cost)."""
    ordered = train.by_cost().models
    return [chain_frontier(f"{a} → {b}", (a, b), train, test, lambdas, cache)
            for a, b in combinations(ordered, 2)]


def envelope(pairs: Sequence[Frontier], test: QueryTable, lambdas: Sequence[float]) -> Frontier:
    """The pointwise upper envelope of the pairs: the hull over all their test points
    (any pair may be deployed at any budget, so every point is reachable)."""
    points = [p for pair in pairs for p in pair.points]
    outcomes = [o for pair in pairs for o in pair.outcomes]
    return Frontier("pairwise envelope", points, outcomes,
                    summarise(points, _models(test), oracle_hull(test, lambdas)))


def switching_points(pairs: Sequence[Frontier], frontier: Frontier) -> list[dict]:
    """Where along the envelope's hull the optimal pair changes (seed 003): each hull
    vertex in cost order with the pair it comes from; consecutive rows with different
    pairs are a switch."""
    owner = {}
    for pair in pairs:
        for p in pair.points:
            owner[(p.cost, p.quality)] = pair.name
    return [{"cost": v["cost"], "quality": v["quality"], "pair": owner.get((v["cost"],
                                                                            v["quality"]))}
            for v in frontier.summary["hull"]]


def refunded(outcome: Outcome, test: QueryTable, first: int) -> Outcome:
    """The same decisions with the first stage's cost removed wherever the cascade went
    past it: what the cascade would cost if it knew in advance which queries to send up."""
    went_up = outcome.last_run != first
    cost = outcome.cost - np.where(went_up, test.cost[:, first], 0.0)
    return Outcome(outcome.chosen, outcome.last_run, outcome.quality, cost)


def signal_strength(pre: np.ndarray, post: np.ndarray, correct: np.ndarray) -> dict:
    """AUROC of a pre-generation and a post-generation prediction of one model's
    correctness on the same queries (None where the labels are all one class)."""
    labelled = ~np.isnan(correct)
    y = correct[labelled] > 0.5
    if y.all() or not y.any():
        return {"pre_auroc": None, "post_auroc": None}
    return {"pre_auroc": float(roc_auc_score(y, pre[labelled])),
            "post_auroc": float(roc_auc_score(y, post[labelled]))}


def structural_check(cascade: Frontier, test: QueryTable, lambdas: Sequence[float],
                     first: int) -> dict:
    """The cascade's frontier with the cheap stage refunded on escalated queries."""
    outcomes = [refunded(o, test, first) for o in cascade.outcomes]
    points = [PolicyPoint(f"{cascade.name} (first stage refunded)", p.lam, o.mean_cost,
                          o.mean_quality, p.train_cost, p.train_quality, p.chain,
                          p.stage_mix, ())
              for p, o in zip(cascade.points, outcomes, strict=True)]
    return summarise(points, _models(test), oracle_hull(test, lambdas))


def chosen_on_train(pairs: Sequence[Frontier], test: QueryTable,
                    lambdas: Sequence[float]) -> Frontier:
    """The deployable envelope: at each λ the pair with the best held-out objective on the
    training folds (the `envelope` hull picks its pair on test, after the fact)."""
    points, outcomes, objectives = [], [], []
    for i in range(len(lambdas)):
        best = max(pairs, key=lambda pair: pair.objectives[i])  # ties: the first pair
        points.append(best.points[i])
        outcomes.append(best.outcomes[i])
        objectives.append(best.objectives[i])
    return Frontier("best pair (chosen on train)", points, outcomes,
                    summarise(points, _models(test), oracle_hull(test, lambdas)),
                    tuple(objectives))


def refund_family(name: str, points: Sequence[PolicyPoint], outcomes: Sequence[Outcome],
                  test: QueryTable, lambdas: Sequence[float]) -> Frontier:
    """Any cascade family with each point's own first stage (its chain's first model)
    refunded on the queries it escalated (`refunded`): structural_check for families
    whose chain changes with λ, e.g. the best subsequence or the envelope's pairs."""
    refunds = [refunded(o, test, test.index(p.chain[0])) for p, o in zip(points, outcomes,
                                                                            strict=True)]
    moved = [PolicyPoint(name, p.lam, o.mean_cost, o.mean_quality, p.train_cost,
                         p.train_quality, p.chain, p.stage_mix, ())
             for p, o in zip(points, refunds, strict=True)]
    return Frontier(name, moved, refunds, summarise(moved, _models(test),
                                                    oracle_hull(test, lambdas)))


def shadow_ratios(points: Sequence[PolicyPoint]) -> list[dict]:
    """Seed 003's single-shadow-price check (theory.md §3): per stage boundary, the median
    over λ > 0 of the boundary's marginal quality per cost (`shadow_prices_`, on train)
    divided by λ, its quartiles, and at how many λ the boundary was in use. At the
    optimum every used boundary trades at λ (ratio 1)."""
    width = max((len(p.shadow_prices) for p in points), default=0)
    rows = []
    for i in range(width):
        ratios = np.array([p.shadow_prices[i] / p.lam for p in points
                           if p.lam > 0 and len(p.shadow_prices) > i
                           and p.shadow_prices[i] is not None])
        used = len(ratios) > 0
        q1, median, q3 = np.percentile(ratios, [25, 50, 75]) if used else (None,) * 3
        rows.append({"boundary": i + 1, "n_lambdas": len(ratios),
                     "median_ratio": None if median is None else float(median),
                     "q1": None if q1 is None else float(q1),
                     "q3": None if q3 is None else float(q3)})
    return rows
