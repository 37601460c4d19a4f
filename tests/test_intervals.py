"""Bootstrap intervals for the frontier metrics, checked against hand-enumerated resamples
and against the Hull-based functions of frontier.py."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from ladder.evaluate.frontier import aiq, cost_at_fraction, upper_hull
from ladder.evaluate.intervals import (
    Resamples,
    _best_model,
    frontier_intervals,
    frontier_metrics,
    interval,
    paired_difference,
    paired_mean_interval,
    replicate_metrics,
)


def hull_metrics(pc, pq, mc, mq) -> dict:
    """The definition, spelled out with frontier.py (summarise's recipe)."""
    mc, mq = np.asarray(mc, float), np.asarray(mq, float)
    hull = upper_hull(pc, pq)
    best = int(np.lexsort((mc, -mq))[0])
    lo, hi = mc.min(), mc.max()
    return {
        "aiq": aiq(hull, lo, hi) if hi > lo else None,
        "cost_at_98": cost_at_fraction(hull, mq[best], mc[best], 0.98),
        "cost_at_100": cost_at_fraction(hull, mq[best], mc[best], 1.0),
    }


def assert_same(got: dict, want: dict) -> None:
    for key, w in want.items():
        g = got[key]
        assert (g is None) == (w is None), (key, g, w)
        if w is not None:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-15), key


def random_case(seed: int) -> tuple[np.ndarray, ...]:
    """Points and models with ties, duplicates, tiny cost scales and non-finite points."""
    r = np.random.default_rng(seed)
    p, k = int(r.integers(1, 25)), int(r.integers(1, 6))
    scale = 10.0 ** r.uniform(-7, 2)
    if seed % 3 == 0:  # a coarse grid: equal costs, equal qualities, collinear points
        pc, pq = r.integers(0, 4, p) * scale, r.integers(0, 5, p) / 4
    else:
        pc, pq = r.uniform(0, 1, p) * scale, r.uniform(0, 1, p)
    mc, mq = r.uniform(0.05, 1, k) * scale, r.uniform(0, 1, k)
    if seed % 5 == 0:  # models among the points: targets hit vertices exactly
        pick = r.integers(0, p, k)
        mc, mq = np.maximum(pc[pick], 0.01 * scale), pq[pick]
    if seed % 7 == 0 and p > 2:
        pc[0], pq[-1] = np.nan, np.inf
    if seed % 11 == 0:
        mc[:] = mc[0]  # AIQ undefined
    return pc, pq, mc, mq


# --- the fast metrics equal the Hull-based ones ---------------------------------------


@pytest.mark.parametrize("block", range(4))
def test_frontier_metrics_equal_hull_functions(block: int) -> None:
    for seed in range(block * 500, (block + 1) * 500):
        pc, pq, mc, mq = random_case(seed)
        assert_same(frontier_metrics(pc, pq, mc, mq), hull_metrics(pc, pq, mc, mq))


def test_no_finite_point_is_an_error_as_in_upper_hull() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        upper_hull([np.nan, 1.0], [0.5, np.inf])
    with pytest.raises(ValueError, match="NaN or infinite"):
        frontier_metrics([np.nan, 1.0], [0.5, np.inf], [1.0, 2.0], [0.5, 0.6])


def test_replicates_equal_hull_functions_on_each_resample() -> None:
    """The batched path (many rows at once, padded hulls) against frontier.py row by row."""
    r = np.random.default_rng(7)
    n, p, k = 40, 9, 3
    cost = r.uniform(0.5, 3, (n, p)).round(1)  # coarse: ties between policies
    quality = (r.uniform(size=(n, p)) < 0.6).astype(float)
    mc, mq = r.uniform(0.5, 3, (n, k)), (r.uniform(size=(n, k)) < 0.6).astype(float)
    rs = Resamples.draw(n, 200, seed=3)
    rep = replicate_metrics(rs, cost, quality, mc, mq)
    for i in range(rs.b):
        idx = rs.indices[i]
        want = hull_metrics(cost[idx].mean(0), quality[idx].mean(0), mc[idx].mean(0),
                            mq[idx].mean(0))
        got = {key: (None if not np.isfinite(rep.values[key][i]) else rep.values[key][i])
               for key in want}
        assert_same(got, want)


def test_best_model_ties_to_the_cheaper_at_tiny_costs() -> None:
    # q − 1e-12·c cannot separate these: 1e-18 is far below the ulp of 0.8.
    costs, qualities = np.array([2e-6, 1e-6, 3e-6]), np.array([0.8, 0.8, 0.7])
    assert int(np.argmax(qualities - 1e-12 * costs)) == 0
    assert int(_best_model(costs, qualities)) == 1
    rows = _best_model(np.array([[1.0, 1.0], [2.0, 1.0]]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert rows.tolist() == [0, 1]  # full tie: the first; else the cheaper
    m = frontier_metrics([1e-6, 2e-6], [0.5, 0.8], costs, qualities)
    assert m["cost_at_100"] == pytest.approx(2.0)  # reference is the 1e-6 model


# --- a case worked out by hand --------------------------------------------------------
# Two queries. Model A costs 1 on both, quality [1, 0]; model B costs 2, quality [1, 1].
# The cascade P answers query 0 with A (cost 1) and query 1 with B (cost 2), both right.
# The 4 equally likely resamples (ordered index pairs) have counts (2,0), (1,1) ×2, (0,2):
#   (2,0): A=(1, 1), B=(2, 1): reference A (tie in quality, cheaper). P=(1, 1).
#          cost_at_98 = 1/1 = 1. AIQ over [1, 2]: flat 1 from 1 → 1.
#   (1,1): A=(1, .5), B=(2, 1): reference B. P=(1.5, 1). cost_at_98 = 1.5/2 = .75.
#          AIQ: 0 on [1, 1.5], 1 on [1.5, 2] → .5.
#   (0,2): A=(1, 0), B=(2, 1): reference B. P=(2, 1). cost_at_98 = 1. AIQ: hull starts at 2 → 0.
# AIQ ~ {0: 1/4, .5: 1/2, 1: 1/4}; cost_at_98 ~ {.75: 1/2, 1: 1/2}.
# "Only A" (cost [1,1], quality [1,0]) reaches 98% only in (2,0) (reference A, cost 1/1 = 1).
MC = np.array([[1.0, 2.0], [1.0, 2.0]])
MQ = np.array([[1.0, 1.0], [0.0, 1.0]])
P_COST, P_QUALITY = np.array([[1.0], [2.0]]), np.array([[1.0], [1.0]])
A_COST, A_QUALITY = MC[:, :1], MQ[:, :1]
ALL_PAIRS = Resamples(np.array(list(itertools.product(range(2), repeat=2))))


def test_hand_case_exact_distribution() -> None:
    rep = replicate_metrics(ALL_PAIRS, P_COST, P_QUALITY, MC, MQ)
    assert sorted(rep.values["aiq"]) == pytest.approx([0.0, 0.5, 0.5, 1.0])
    assert sorted(rep.values["cost_at_98"]) == pytest.approx([0.75, 0.75, 1.0, 1.0])
    assert rep.point == pytest.approx({"aiq": 0.5, "cost_at_98": 0.75, "cost_at_100": 0.75})
    # Inverted-CDF percentiles: at level .5 (p = .25, .75) AIQ's are 0 and .5 exactly.
    ci = interval(rep, level=0.5)
    assert (ci["aiq"]["low"], ci["aiq"]["high"]) == pytest.approx((0.0, 0.5))
    assert (ci["cost_at_98"]["low"], ci["cost_at_98"]["high"]) == pytest.approx((0.75, 1.0))
    assert ci["reference_stable"] == 0.75  # the point's reference B in 3 of 4
    ci = interval(rep, level=0.9)
    assert (ci["aiq"]["low"], ci["aiq"]["high"]) == pytest.approx((0.0, 1.0))


def test_hand_case_random_resamples_match_exact_percentiles() -> None:
    rs = Resamples.draw(2, 4000, seed=11)
    rep = replicate_metrics(rs, P_COST, P_QUALITY, MC, MQ)
    shares = [np.mean(rep.values["aiq"] == v) for v in (0.0, 0.5, 1.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    # Levels whose percentiles sit away from the CDF's steps (.25, .75), so the empirical
    # ones must equal the exact distribution's: level .6 → p = .2, .8 → 0 and 1.
    ci = interval(rep, level=0.6)
    assert (ci["aiq"]["low"], ci["aiq"]["high"]) == (0.0, 1.0)
    ci = interval(rep, level=0.4)  # p = .3, .7 → .5 and .5
    assert (ci["aiq"]["low"], ci["aiq"]["high"]) == (0.5, 0.5)


def test_three_queries_all_27_resamples_against_frontier() -> None:
    """Every resample of 3 queries, each replicate against frontier.py on its own means."""
    r = np.random.default_rng(5)
    cost, quality = r.uniform(0.2, 2, (3, 4)), r.uniform(size=(3, 4))
    mc, mq = r.uniform(0.2, 2, (3, 3)), r.uniform(size=(3, 3))
    idx = np.array(list(itertools.product(range(3), repeat=3)))
    rep = replicate_metrics(Resamples(idx), cost, quality, mc, mq)
    want = [hull_metrics(cost[i].mean(0), quality[i].mean(0), mc[i].mean(0), mq[i].mean(0))
            for i in idx]
    exact = np.sort([w["aiq"] for w in want])
    ci = interval(rep, level=0.8)  # p = .1 → 3rd of 27 (ceil 2.7); p = .9 → 25th (ceil 24.3)
    assert ci["aiq"]["low"] == pytest.approx(exact[2])
    assert ci["aiq"]["high"] == pytest.approx(exact[24])


# --- degenerate resamples, pairing, reaching ------------------------------------------


def test_identity_resamples_collapse_to_the_point_estimate() -> None:
    r = np.random.default_rng(1)
    n = 50
    cost, quality = r.uniform(0.1, 5, (n, 6)), (r.uniform(size=(n, 6)) < 0.7).astype(float)
    mc, mq = r.uniform(0.1, 5, (n, 3)), (r.uniform(size=(n, 3)) < 0.7).astype(float)
    quality[:, 0] = 1.0  # a perfect (dear) policy: every target is reached
    rs = Resamples(np.tile(np.arange(n), (5, 1)))
    ci = interval(replicate_metrics(rs, cost, quality, mc, mq))
    want = hull_metrics(cost.mean(0), quality.mean(0), mc.mean(0), mq.mean(0))
    assert want["aiq"] is not None and want["cost_at_98"] is not None
    for key, w in want.items():
        got = ci[key]
        if w is None:
            assert got["point"] is None and got["low"] is None and got["high"] is None
        else:
            for end in ("point", "low", "high"):
                assert got[end] == pytest.approx(w, rel=1e-12), (key, end)


def test_paired_difference_with_itself_is_zero() -> None:
    r = np.random.default_rng(2)
    n = 60
    cost, quality = r.uniform(0.1, 5, (n, 5)), (r.uniform(size=(n, 5)) < 0.8).astype(float)
    mc, mq = r.uniform(0.1, 5, (n, 3)), (r.uniform(size=(n, 3)) < 0.8).astype(float)
    rs = Resamples.draw(n, 300, seed=0)
    a = replicate_metrics(rs, cost, quality, mc, mq)
    d = paired_difference(a, a)
    assert d["aiq"]["point"] == d["aiq"]["low"] == d["aiq"]["high"] == 0.0
    assert d["aiq"]["share_positive"] == 0.0
    for key in ("cost_at_98", "cost_at_100"):
        c = d[key]
        assert c["share_only_a"] == c["share_only_b"] == 0.0
        assert c["share_both"] + c["share_neither"] == 1.0
        if c["share_both"]:
            assert c["low"] == c["high"] == 0.0
    with pytest.raises(ValueError, match="same Resamples"):
        paired_difference(a, replicate_metrics(Resamples.draw(n, 300, seed=0), cost, quality,
                                               mc, mq))


def test_share_reached_and_unreached_ends() -> None:
    # Hand case: "only A" reaches 98% in (2,0) alone, at cost 1; elsewhere +inf.
    rep = replicate_metrics(ALL_PAIRS, A_COST, A_QUALITY, MC, MQ)
    ci = interval(rep, level=0.9)
    c = ci["cost_at_98"]
    assert c["share_reached"] == 0.25
    assert c["point"] is None  # the full split is the (1,1) resample
    assert c["low"] == 1.0 and c["high"] is None  # sorted [1, inf, inf, inf]
    ci = interval(rep, level=0.2)  # p = .4, .6: both ends unreached
    assert ci["cost_at_98"]["low"] is None and ci["cost_at_98"]["high"] is None

    p = replicate_metrics(ALL_PAIRS, P_COST, P_QUALITY, MC, MQ)
    d = paired_difference(p, rep)["cost_at_98"]
    assert (d["share_both"], d["share_only_a"], d["share_only_b"], d["share_neither"]) == (
        0.25, 0.75, 0.0, 0.0)
    assert d["point"] is None
    assert d["low"] == d["high"] == 0.0  # both reach only in (2,0): 1 − 1
    d = paired_difference(rep, p)["cost_at_98"]
    assert (d["share_only_a"], d["share_only_b"]) == (0.0, 0.75)


def test_fixed_family_reaches_its_own_reference() -> None:
    r = np.random.default_rng(4)
    n = 80
    mc, mq = r.uniform(0.1, 5, (n, 4)), (r.uniform(size=(n, 4)) < 0.6).astype(float)
    cost, quality = r.uniform(0.1, 5, (n, 7)), (r.uniform(size=(n, 7)) < 0.6).astype(float)
    out = frontier_intervals({"auto": (cost, quality), "fixed": (mc, mq)}, mc, mq, b=200,
                             comparisons=[("auto", "fixed")])
    fixed = out["families"]["fixed"]["cost_at_100"]
    assert fixed == {"point": 1.0, "low": 1.0, "high": 1.0, "share_reached": 1.0}
    (cmp,) = out["comparisons"]
    assert (cmp["a"], cmp["b"], cmp["resamples"], cmp["level"]) == ("auto", "fixed", 200, 0.9)
    assert cmp["cost_at_100"]["share_only_b"] + cmp["cost_at_100"]["share_both"] == 1.0
    with pytest.raises(KeyError, match="threshold"):
        frontier_intervals({"auto": (cost, quality)}, mc, mq, b=5,
                           comparisons=[("auto", "threshold")])


def test_aiq_undefined_when_model_costs_are_equal() -> None:
    mc = np.ones((4, 2))
    mq = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    rep = replicate_metrics(Resamples.draw(4, 50), mc, mq, mc, mq)
    assert rep.point["aiq"] is None
    assert interval(rep)["aiq"] == {"point": None, "low": None, "high": None}


def test_seeded_reproducibility() -> None:
    r = np.random.default_rng(9)
    n = 100
    fams = {"a": (r.uniform(0.1, 5, (n, 5)), r.uniform(size=(n, 5))),
            "b": (r.uniform(0.1, 5, (n, 4)), r.uniform(size=(n, 4)))}
    mc, mq = r.uniform(0.1, 5, (n, 3)), r.uniform(size=(n, 3))
    one = frontier_intervals(fams, mc, mq, b=300, seed=42, comparisons=[("a", "b")])
    two = frontier_intervals(fams, mc, mq, b=300, seed=42, comparisons=[("a", "b")])
    other = frontier_intervals(fams, mc, mq, b=300, seed=43, comparisons=[("a", "b")])
    assert one == two
    assert one != other
    assert np.array_equal(Resamples.draw(n, 10, 5).indices, Resamples.draw(n, 10, 5).indices)


def test_paired_mean_interval_by_hand() -> None:
    # a = [1, 3]: resample means 1 (p 1/4), 2 (1/2), 3 (1/4); b = [1, 1] always 1.
    a, b = np.array([1.0, 3.0]), np.array([1.0, 1.0])
    assert paired_mean_interval(ALL_PAIRS, a, b, level=0.5) == {
        "point": 1.0, "low": 0.0, "high": 1.0}
    assert paired_mean_interval(ALL_PAIRS, a, b, ratio=True, level=0.5) == {
        "point": 2.0, "low": 1.0, "high": 2.0}


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="b ≥ 1"):
        Resamples.draw(10, 0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Resamples(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="level"):
        interval(replicate_metrics(ALL_PAIRS, P_COST, P_QUALITY, MC, MQ), level=1.0)
    with pytest.raises(ValueError, match="expected"):
        replicate_metrics(ALL_PAIRS, np.ones((3, 1)), np.ones((3, 1)), MC, MQ)
    with pytest.raises(ValueError, match="finite"):
        replicate_metrics(ALL_PAIRS, np.array([[1.0], [np.nan]]), P_QUALITY, MC, MQ)


def test_speed_eight_families_1500_queries() -> None:
    r = np.random.default_rng(0)
    n, k = 1500, 5
    mc = r.uniform(0.1, 1, (n, k)) * np.array([1, 2, 4, 8, 16])
    mq = (r.uniform(size=(n, k)) < np.array([0.5, 0.6, 0.7, 0.8, 0.85])).astype(float)
    fams = {f"f{i}": (r.uniform(0.1, 10, (n, 21)), (r.uniform(size=(n, 21)) < 0.8) * 1.0)
            for i in range(8)}
    t = time.perf_counter()
    frontier_intervals(fams, mc, mq, b=1000, comparisons=[("f0", "f1"), ("f0", "f2")])
    assert time.perf_counter() - t < 5.0
