"""The family summary of an evaluation: best-model choice, the 98% mixture, zero costs and
oracle gap closure at matched quality, each on a case small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ladder.evaluate.experiment import PolicyPoint, evaluate, oracle_hull, summarise
from ladder.evaluate.frontier import upper_hull
from ladder.policies.base import best_model
from ladder.policies.baselines import RandomMix
from ladder.report import _best_model
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable


def table(quality: np.ndarray, cost: list[float], models: tuple[str, ...]) -> QueryTable:
    n, k = quality.shape
    rng = np.random.default_rng(0)
    signals = {name: np.full((n, k), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = np.clip(0.6 * quality + 0.4 * rng.random((n, k)), 0, 1)
    return QueryTable(query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
                      models=models, quality=quality.astype(float),
                      cost=np.broadcast_to(np.asarray(cost, float), (n, k)).copy(),
                      signals=signals)


def point(cost: float, quality: float, lam: float = 0.0) -> PolicyPoint:
    return PolicyPoint("fixed", lam, cost, quality, cost, quality, ("m",), {})


def models(*rows: tuple[str, float, float]) -> list[dict]:
    return [{"name": n, "cost": c, "quality": q} for n, c, q in rows]


def test_best_model_tie_breaks_exactly_at_micro_dollar_costs():
    # q − 1e-12·c cannot tell 2e-6 from 1e-6 $ at quality .8: the tie went to the dearer
    assert best_model([0.8, 0.8], [2e-6, 1e-6]) == 1
    assert best_model([0.8, 0.8, 0.8], [1e-6, 1e-6, 3e-6]) == 0  # equal cost: the earlier
    assert best_model([0.7, 0.9, 0.9], [1e-6, 5e-6, 4e-6]) == 2
    assert best_model([0.9, 0.7], [5e-6, 1e-6]) == 0  # quality first


def test_random_mix_mixes_towards_the_cheaper_of_tied_best_models():
    quality = np.column_stack([np.zeros(10), np.ones(10), np.ones(10)])
    mix = RandomMix(target_cost=1.5e-6).fit(table(quality, [1e-7, 2e-6, 1e-6], tuple("abc")))
    assert mix.models_ == ("a", "c")


def test_summary_and_report_measure_against_the_cheaper_of_tied_best_models():
    tied = models(("dear", 2e-6, 0.8), ("cheap", 1e-6, 0.8))
    summary = summarise([point(1e-6, 0.8)], tied, upper_hull([1e-6], [0.8]))
    assert summary["cost_at_100"] == pytest.approx(1.0)  # the cheap model is the reference

    class Stub:
        models = tied

    assert _best_model(Stub())["name"] == "cheap"


def test_mixture_at_98_when_the_cheapest_vertex_already_reaches_it():
    # the cheap model has 98% of the best one's quality; 0.01 / 4.7 * 4.7 < 0.01 in floats,
    # so a cost → share → cost round trip fell below the cheapest vertex and raised
    pool = models(("small", 0.01, 0.98), ("big", 4.7, 1.0))
    points = [point(0.01, 0.98), point(4.7, 1.0)]
    summary = summarise(points, pool, upper_hull([0.01, 4.7], [0.98, 1.0]))
    assert summary["cost_at_98"] == pytest.approx(0.01 / 4.7)
    assert summary["mix_at_98"] == {"lambda_a": 0.0, "lambda_b": 0.0, "weight_b": 0.0}
    assert summary["gap_closure_98"] == pytest.approx(1.0)  # as cheap as the oracle there


def test_zero_costs_leave_cost_shares_undefined():
    pool = models(("a", 0.0, 0.6), ("b", 0.0, 0.9))
    summary = summarise([point(0.0, 0.6), point(0.0, 0.9)], pool, upper_hull([0.0], [0.95]))
    for key in ("aiq", "cost_at_98", "cost_at_100", "cpt50", "cpt80", "apgr",
                "gap_closure_98"):
        assert summary[key] is None, key
    assert summary["max_quality"] == 0.9


def gap_case() -> QueryTable:
    """cheap (cost 1) right on half the queries, dear (cost 10) right on all.

    Oracle over λ: λ = 0 pays 1 on the cheap-right half and 10 on the rest, (5.5, 1.0);
    λ > 1/9 takes cheap everywhere, (1, 0.5). At 98% of the best quality (.98) its hull
    costs 1 + (.48/.5)·4.5 = 5.32, not the λ = 0 oracle's 5.5. The fixed family's hull
    (1, .5)–(10, 1) costs 1 + .96·9 = 9.64 there: closure (10 − 9.64)/(10 − 5.32).
    """
    n = 40
    quality = np.column_stack([np.arange(n) % 2 == 0, np.ones(n)])
    return table(quality, [1.0, 10.0], ("cheap", "dear"))


def test_oracle_hull_over_lambda():
    hull = oracle_hull(gap_case(), [0.0, 0.01, 0.1, 1.0])
    assert hull.costs.tolist() == pytest.approx([1.0, 5.5])
    assert hull.cost_at(0.98) == pytest.approx(5.32)


def test_gap_closure_uses_the_oracle_at_matched_quality_without_the_oracle_family():
    data = gap_case()
    result = evaluate(data, data, families=("fixed",), n_lambdas=4, max_stages=2)
    assert "oracle" not in result.summary
    assert result.summary["fixed"]["gap_closure_98"] == pytest.approx((10 - 9.64) / (10 - 5.32))
