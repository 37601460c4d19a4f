"""Seed 003's pairwise envelope against brute force, the refund and the signal check."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from ladder.evaluate.envelope import (
    chosen_on_train,
    envelope,
    pair_frontiers,
    refund_family,
    refunded,
    shadow_ratios,
    signal_strength,
    structural_check,
    switching_points,
)
from ladder.evaluate.experiment import PolicyPoint
from ladder.policies.base import Outcome
from ladder.policies.stages import PredictorCache
from test_report import synthetic_table

LAMBDAS = np.geomspace(10.0, 3000.0, 9)


@pytest.fixture(scope="module")
def small():
    table = synthetic_table(n=60, seed=3)
    cache = PredictorCache(table)
    pairs = pair_frontiers(table, table, LAMBDAS, cache)
    return table, cache, pairs


def brute_force_best(table, cache, lam: float) -> float:
    """max J_λ over every pair and every cut of the first stage's predicted quality
    (stop where the score reaches the cut), in sample; plus the single models."""
    best = max(table.quality[:, m].mean() - lam * table.cost[:, m].mean()
               for m in range(table.k))
    for a, b in combinations(range(table.k), 2):
        score = cache.scores(table, [a, b])[:, 0]
        for cut in [-np.inf, *np.unique(score), np.inf]:
            stop = score >= cut
            q = np.where(stop, table.quality[:, a], table.quality[:, b])
            c = table.cost[:, a] + np.where(stop, 0.0, table.cost[:, b])
            best = max(best, q.mean() - lam * c.mean())
    return best


def test_envelope_reaches_the_brute_force_optimum_at_every_lambda(small):
    table, cache, pairs = small
    assert len(pairs) == 3
    hull = envelope(pairs, table, LAMBDAS).summary["hull"]
    for lam in LAMBDAS:
        envelope_best = max(v["quality"] - lam * v["cost"] for v in hull)
        assert envelope_best == pytest.approx(brute_force_best(table, cache, lam), abs=1e-12)


def test_envelope_dominates_every_pair(small):
    table, _, pairs = small
    whole = envelope(pairs, table, LAMBDAS)
    assert whole.summary["aiq"] >= max(p.summary["aiq"] for p in pairs) - 1e-12
    owners = {row["pair"] for row in switching_points(pairs, whole)}
    assert owners <= {p.name for p in pairs}


def test_refund_removes_the_first_stage_cost_only_where_the_cascade_went_up():
    table = synthetic_table(n=4)
    outcome = Outcome(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 0]), np.ones(4),
                      table.cost[:, 0] + np.array([0.0, 1.0, 2.0, 0.0]))
    cost = refunded(outcome, table, 0).cost
    np.testing.assert_allclose(cost, [table.cost[0, 0], 1.0, 2.0, table.cost[3, 0]])


def test_structural_check_is_never_dearer_than_the_cascade(small):
    table, _, pairs = small
    cascade = pairs[0]
    refunded_summary = structural_check(cascade, table, LAMBDAS, first=0)
    assert refunded_summary["aiq"] >= cascade.summary["aiq"] - 1e-12


def test_signal_strength_by_hand():
    correct = np.array([1.0, 0.0, 1.0, 0.0, np.nan])
    pre = np.array([0.9, 0.1, 0.2, 0.8, 0.5])  # three of four (positive, negative) pairs ordered
    post = np.array([0.9, 0.1, 0.8, 0.2, 0.5])  # perfect: 1.0
    assert signal_strength(pre, post, correct) == {"pre_auroc": 0.75, "post_auroc": 1.0}
    assert signal_strength(pre, post, np.ones(5))["pre_auroc"] is None


def test_chosen_on_train_takes_the_best_held_out_pair_at_each_lambda(small):
    table, _, pairs = small
    chosen = chosen_on_train(pairs, table, LAMBDAS)
    assert len(chosen.points) == len(LAMBDAS)
    for i, point in enumerate(chosen.points):
        best = max(pair.objectives[i] for pair in pairs)
        assert chosen.objectives[i] == best
        owner = next(p for p in pairs if p.objectives[i] == best)
        assert point is owner.points[i]
    # each pair's points carry the boundary's shadow price (one boundary per pair)
    assert all(len(p.shadow_prices) == 1 for pair in pairs for p in pair.points)


def test_refund_family_refunds_each_point_by_its_own_first_stage(small):
    table, _, pairs = small
    points = [pairs[0].points[3], pairs[-1].points[3]]  # first stages 0 and 1
    outcomes = [pairs[0].outcomes[3], pairs[-1].outcomes[3]]
    moved = refund_family("r", points, outcomes, table, LAMBDAS)
    for p, o, r in zip(points, outcomes, moved.outcomes, strict=True):
        expected = refunded(o, table, table.index(p.chain[0]))
        np.testing.assert_allclose(r.cost, expected.cost)
        assert r.mean_cost <= o.mean_cost + 1e-15
    assert moved.points[1].cost == pytest.approx(moved.outcomes[1].mean_cost)


def test_shadow_ratios_by_hand():
    def point(lam, rates):
        return PolicyPoint("t", lam, 0.0, 0.0, 0.0, 0.0, ("a", "b", "c"), {}, rates)

    points = [point(0.0, (5.0, 5.0)),  # λ = 0: no ratio
              point(1.0, (1.0, None)), point(2.0, (4.0, 3.0)), point(4.0, (2.0, 2.0))]
    rows = shadow_ratios(points)
    assert rows[0] == {"boundary": 1, "n_lambdas": 3, "median_ratio": 1.0, "q1": 0.75,
                       "q3": 1.5}
    assert rows[1]["n_lambdas"] == 2 and rows[1]["median_ratio"] == pytest.approx(1.0)
    assert shadow_ratios([]) == []
