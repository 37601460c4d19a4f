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


def _models(test: QueryTable) -> list[dict]:
    return [{"name": m, "cost": float(c), "quality": float(q)}
            for m, c, q in zip(test.models, test.mean_cost(), test.mean_quality(), strict=True)]


def chain_frontier(name: str, chain: Sequence[str], train: QueryTable, test: QueryTable,
                   lambdas: Sequence[float], cache: PredictorCache) -> Frontier:
    """A threshold cascade over a fixed chain, fitted at each λ on train, on test."""
    points, outcomes = [], []
    for lam in lambdas:
        policy = ThresholdCascade(list(chain), float(lam)).fit(train, cache)
        outcome = policy.replay(test, cache)
        on_train = policy.replay(train, cache)
        points.append(PolicyPoint(name, float(lam), outcome.mean_cost, outcome.mean_quality,
                                  on_train.mean_cost, on_train.mean_quality, tuple(chain),
                                  outcome.stage_mix(test.models), ()))
        outcomes.append(outcome)
    return Frontier(name, points, outcomes,
                    summarise(points, _models(test), oracle_hull(test, lambdas)))


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
