"""Frontier maths, checked against values worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ladder.evaluate.frontier import (
    Hull,
    aiq,
    apgr,
    cost_at_fraction,
    cpt,
    gap_closure,
    upper_hull,
)

# Example 1. Index: 0=(1,.5) 1=(2,.6) 2=(3,.9) 3=(4,.8) 4=(2.5,.55)
# Start: cheapest point (1,.5). End: max quality .9 at cost 3.
# (4,.8) is dominated by (3,.9): dearer and worse -> past the end, excluded.
# (2.5,.55) is dominated by (2,.6) and lies below the chord.
# (2,.6): chord (1,.5)->(3,.9) has slope (.9-.5)/(3-1) = .2, at cost 2 it is
#   .5 + .2*1 = .7 > .6, so (2,.6) is a non-concave middle point, excluded.
# Hull: (1,.5) -> (3,.9), indices [0, 2], slope .2.
C1 = [1.0, 2.0, 3.0, 4.0, 2.5]
Q1 = [0.5, 0.6, 0.9, 0.8, 0.55]

# Example 2 (three vertices). A=(1,.4) B=(2,.7) C=(4,.9) D=(3,.6) E=(5,.85)
# slope AB = .3/1 = .3, slope BC = .2/2 = .1 < .3 -> B is a vertex (concave).
# D: chord BC at 3 is .8 > .6 -> below. E: dearer and worse than C -> excluded.
C2 = [1.0, 2.0, 4.0, 3.0, 5.0]
Q2 = [0.4, 0.7, 0.9, 0.6, 0.85]


@pytest.fixture
def h1() -> Hull:
    return upper_hull(C1, Q1)


def test_hull_vertices_example1(h1: Hull) -> None:
    assert h1.indices.tolist() == [0, 2]
    np.testing.assert_allclose(h1.costs, [1.0, 3.0])
    np.testing.assert_allclose(h1.qualities, [0.5, 0.9])
    assert 3 not in h1.indices  # dominated (4, .8)
    assert 1 not in h1.indices  # non-concave middle (2, .6)
    assert len(h1) == 2


def test_hull_vertices_example2() -> None:
    h = upper_hull(C2, Q2)
    assert h.indices.tolist() == [0, 1, 2]
    np.testing.assert_allclose(h.costs, [1.0, 2.0, 4.0])
    np.testing.assert_allclose(h.qualities, [0.4, 0.7, 0.9])


def test_quality_at(h1: Hull) -> None:
    assert h1.quality_at(1.0) == pytest.approx(0.5)
    assert h1.quality_at(2.0) == pytest.approx(0.7)  # .5 + .2*(2-1)
    assert h1.quality_at(2.5) == pytest.approx(0.8)  # .5 + .2*(2.5-1)
    assert h1.quality_at(3.0) == pytest.approx(0.9)
    assert h1.quality_at(3.5) == pytest.approx(0.9)  # flat past the last vertex
    assert h1.quality_at(100.0) == pytest.approx(0.9)
    assert math.isnan(h1.quality_at(0.5))  # below the cheapest policy


def test_cost_at(h1: Hull) -> None:
    # .8 is between .5 and .9: cost = 1 + (.8-.5)/.2 = 1 + 1.5 = 2.5
    assert h1.cost_at(0.8) == pytest.approx(2.5)
    assert h1.cost_at(0.9) == pytest.approx(3.0)
    assert h1.cost_at(0.5) == pytest.approx(1.0)
    assert h1.cost_at(0.3) == pytest.approx(1.0)  # already beaten by the cheapest policy
    assert h1.cost_at(0.95) is None  # above max quality .9


def test_mixture_reproduces_cost_and_quality(h1: Hull) -> None:
    # cost 2.5 on segment (1,.5)-(3,.9): w = (2.5-1)/(3-1) = .75
    a, b, w = h1.mixture(2.5)
    assert (a, b) == (0, 2)
    assert w == pytest.approx(0.75)
    # cost: .25*1 + .75*3 = .25 + 2.25 = 2.5; quality: .25*.5 + .75*.9 = .125 + .675 = .8
    assert (1 - w) * C1[a] + w * C1[b] == pytest.approx(2.5)
    assert (1 - w) * Q1[a] + w * Q1[b] == pytest.approx(h1.quality_at(2.5))
    assert h1.mixture(1.0) == (0, 0, 0.0)  # at a vertex: a pure policy
    assert h1.mixture(3.0) == (2, 2, 0.0)
    assert h1.mixture(7.0) == (2, 2, 0.0)  # past the end: the max-quality policy
    with pytest.raises(ValueError, match="below"):
        h1.mixture(0.5)
    # a vertex's cost recomputed as fraction × best cost may land an ulp below it
    cheapest = 3.5051785714285714e-06
    h = upper_hull([cheapest, 2 * cheapest], [0.5, 0.9])
    below = float(np.nextafter(cheapest, 0))
    assert h.mixture(below) == (0, 0, 0.0) and h.quality_at(below) == 0.5


def test_mixture_three_vertices() -> None:
    h = upper_hull(C2, Q2)
    # cost 3 on segment B=(2,.7) - C=(4,.9): w = (3-2)/(4-2) = .5
    assert h.mixture(3.0) == (1, 2, pytest.approx(0.5))
    # cost 1.25 on A=(1,.4) - B=(2,.7): w = .25
    assert h.mixture(1.25) == (0, 1, pytest.approx(0.25))
    assert h.mixture(2.0) == (1, 1, 0.0)


def test_aiq_example1_with_region_below_first_vertex(h1: Hull) -> None:
    # c in [0,4]: [0,1) undefined -> 0; [1,3] trapezoid (.5+.9)/2*2 = 1.4;
    # [3,4] flat .9*1 = .9. Area 2.3, normalised by width 4: 2.3/4 = .575
    assert aiq(h1, 0.0, 4.0) == pytest.approx(0.575)
    # c in [1,3] only: 1.4 / 2 = .7
    assert aiq(h1, 1.0, 3.0) == pytest.approx(0.7)


def test_aiq_three_vertices() -> None:
    h = upper_hull(C2, Q2)
    # c in [.5, 4.5]: [.5,1) -> 0; [1,2] (.4+.7)/2*1 = .55; [2,4] (.7+.9)/2*2 = 1.6;
    # [4,4.5] .9*.5 = .45. Area .55+1.6+.45 = 2.6, width 4: 2.6/4 = .65
    assert aiq(h, 0.5, 4.5) == pytest.approx(0.65)
    # cutting inside a segment: c in [1.5, 3]: q(1.5) = .55, q(2) = .7, q(3) = .8
    # (.55+.7)/2*.5 = .3125; (.7+.8)/2*1 = .75; area 1.0625 / 1.5 = .708333...
    assert aiq(h, 1.5, 3.0) == pytest.approx(1.0625 / 1.5)


def test_cpt(h1: Hull) -> None:
    # weak=(1,.5), strong=(3,.9). CPT(50%): target .5 + .5*.4 = .7 -> cost 2 -> 2/3
    assert cpt(h1, 0.5, 0.9, 3.0, 0.5) == pytest.approx(2 / 3)
    # CPT(80%): target .5 + .8*.4 = .82 -> cost 1 + .32/.2 = 2.6 -> 2.6/3
    assert cpt(h1, 0.5, 0.9, 3.0, 0.8) == pytest.approx(2.6 / 3)
    # CPT(100%) = the strong model itself: 3/3
    assert cpt(h1, 0.5, 0.9, 3.0, 1.0) == pytest.approx(1.0)
    # strong quality 1.0: target for p=.8 is .5+.8*.5 = .9 -> cost 3 -> 3/3;
    # for p=.9 the target .95 is never reached
    assert cpt(h1, 0.5, 1.0, 3.0, 0.8) == pytest.approx(1.0)
    assert cpt(h1, 0.5, 1.0, 3.0, 0.9) is None
    assert cpt(h1, 0.7, 0.7, 3.0, 0.5) is None  # no gap


def test_apgr_routellm_units() -> None:
    # Cost = share of strong-model calls. weak (0,.5), strong (1,.9), routers
    # (.25,.7) (.5,.8) (.75,.82). Slopes: 0->.25: .8; .25->.5: .4; .5->.75: .08;
    # .75->1: .32 > .08 so (.75,.82) is not concave; .5->1: .2 < .4, keep (.5,.8).
    # Hull: (0,.5) (.25,.7) (.5,.8) (1,.9); PGR = (q-.5)/.4 = 0, .5, .75, 1.
    # Trapezoids: (0+.5)/2*.25 = .0625; (.5+.75)/2*.25 = .15625; (.75+1)/2*.5 = .4375
    # APGR = .0625 + .15625 + .4375 = .65625
    h = upper_hull([0.0, 1.0, 0.25, 0.5, 0.75], [0.5, 0.9, 0.7, 0.8, 0.82])
    assert h.indices.tolist() == [0, 2, 3, 1]
    assert apgr(h, 0.0, 1.0, 0.5, 0.9) == pytest.approx(0.65625)
    # The random router (the chord weak->strong) has PGR(x) = x, APGR = 1/2.
    chord = upper_hull([0.0, 1.0], [0.5, 0.9])
    assert apgr(chord, 0.0, 1.0, 0.5, 0.9) == pytest.approx(0.5)


def test_apgr_region_below_first_vertex(h1: Hull) -> None:
    # c_weak=0, c_strong=3, q .5 -> .9. c in [0,1): undefined -> PGR 0.
    # [1,3]: PGR goes 0 -> 1 linearly, integral (0+1)/2*2 = 1. Divide by width 3: 1/3
    assert apgr(h1, 0.0, 3.0, 0.5, 0.9) == pytest.approx(1 / 3)
    assert math.isnan(apgr(h1, 0.0, 3.0, 0.6, 0.6))  # no gap


def test_cost_at_fraction(h1: Hull) -> None:
    # best single model = (3, .9). 98%: target .882 -> cost 1 + .382/.2 = 2.91 -> 2.91/3 = .97
    assert cost_at_fraction(h1, 0.9, 3.0, 0.98) == pytest.approx(0.97)
    assert cost_at_fraction(h1, 0.9, 3.0, 1.0) == pytest.approx(1.0)
    # 105%: target .945 > .9, never reached
    assert cost_at_fraction(h1, 0.9, 3.0, 1.05) is None
    # a share of a zero cost is undefined (a log whose costs are all 0), not an error
    assert cost_at_fraction(h1, 0.9, 0.0, 0.98) is None
    assert cpt(h1, 0.5, 0.9, 0.0, 0.5) is None
    with pytest.raises(ValueError, match="reference_cost"):
        cost_at_fraction(h1, 0.9, -1.0, 0.98)


def test_gap_closure() -> None:
    # best single costs 3, oracle 1, policy 2: (3-2)/(3-1) = .5
    assert gap_closure(2.0, 3.0, 1.0) == pytest.approx(0.5)
    assert gap_closure(1.0, 3.0, 1.0) == pytest.approx(1.0)  # as cheap as the oracle
    assert gap_closure(3.0, 3.0, 1.0) == pytest.approx(0.0)
    assert gap_closure(4.0, 3.0, 1.0) == pytest.approx(-0.5)  # (3-4)/2
    assert gap_closure(None, 3.0, 1.0) is None
    assert gap_closure(2.0, 1.0, 1.0) is None


def test_gap_closure_from_hull(h1: Hull) -> None:
    # matched quality .9 (best single model) -> policy cost 3 -> closure (3-3)/(3-1) = 0
    assert gap_closure(h1.cost_at(0.9), 3.0, 1.0) == pytest.approx(0.0)
    assert gap_closure(h1.cost_at(0.95), 3.0, 1.0) is None


# --- degenerate input ----------------------------------------------------------


def test_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        upper_hull([], [])


def test_all_nan_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        upper_hull([np.nan, 1.0], [0.5, np.nan])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="equal length"):
        upper_hull([1.0, 2.0], [0.5])


def test_single_point() -> None:
    h = upper_hull([2.0], [0.7])
    assert h.indices.tolist() == [0]
    assert h.quality_at(5.0) == pytest.approx(0.7)
    assert math.isnan(h.quality_at(1.0))
    assert h.cost_at(0.7) == pytest.approx(2.0)
    assert h.cost_at(0.71) is None
    assert h.mixture(3.0) == (0, 0, 0.0)
    # c in [0,4]: 0 on [0,2), .7 on [2,4] -> 1.4 / 4 = .35
    assert aiq(h, 0.0, 4.0) == pytest.approx(0.35)


def test_nan_points_ignored_indices_kept() -> None:
    # NaN at index 1 and inf at index 3; the rest is example 1's hull (1,.5) (3,.9)
    h = upper_hull([1.0, np.nan, 3.0, np.inf, 2.0], [0.5, 0.99, 0.9, 1.0, 0.6])
    assert h.indices.tolist() == [0, 2]


def test_ties() -> None:
    # cheapest cost 1 twice: keep the higher quality (.6, index 1);
    # max quality .9 twice: stop at the cheaper (cost 3, index 2), not (4,.9)
    h = upper_hull([1.0, 1.0, 3.0, 4.0], [0.5, 0.6, 0.9, 0.9])
    assert h.indices.tolist() == [1, 2]
    # identical duplicates: the first index is used
    assert upper_hull([1.0, 1.0], [0.5, 0.5]).indices.tolist() == [0]


def test_collinear_middle_dropped() -> None:
    # (2,.7) lies on the chord (1,.5)-(3,.9): a .5/.5 mixture gives the same point
    h = upper_hull([1.0, 2.0, 3.0], [0.5, 0.7, 0.9])
    assert h.indices.tolist() == [0, 2]
    assert h.quality_at(2.0) == pytest.approx(0.7)


def test_cheapest_is_best() -> None:
    # the cheapest point has the max quality: the hull is that single point
    h = upper_hull([1.0, 2.0, 3.0], [0.9, 0.8, 0.85])
    assert h.indices.tolist() == [0]


def test_bad_ranges_raise(h1: Hull) -> None:
    with pytest.raises(ValueError):
        aiq(h1, 2.0, 2.0)
    with pytest.raises(ValueError):
        apgr(h1, 1.0, 0.0, 0.5, 0.9)
    with pytest.raises(ValueError):
        cpt(h1, 0.5, 0.9, -1.0, 0.5)


def test_hull_is_frozen(h1: Hull) -> None:
    with pytest.raises(ValueError):
        h1.costs[0] = 0.0
    with pytest.raises(AttributeError):
        h1.costs = np.array([0.0])  # type: ignore[misc]


# --- property-style --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_random_points_properties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    c = rng.uniform(0.0, 10.0, n)
    q = np.clip(rng.uniform(0.0, 1.0, n) + 0.05 * c, 0.0, 1.0)
    if n > 3:  # some exact ties and NaNs
        c[1] = c[0]
        q[2] = np.nan
    h = upper_hull(c, q)
    ok = np.isfinite(c) & np.isfinite(q)

    # vertices are input points
    np.testing.assert_array_equal(h.costs, c[h.indices])
    np.testing.assert_array_equal(h.qualities, q[h.indices])
    # starts at the cheapest point, ends at the max quality
    assert h.costs[0] == c[ok].min()
    assert h.qualities[-1] == q[ok].max()
    # every input point on or below the hull
    for ci, qi in zip(c[ok], q[ok], strict=True):
        assert qi <= h.quality_at(ci) + 1e-12
    # strictly increasing in cost and quality, slopes non-increasing (concave)
    assert np.all(np.diff(h.costs) > 0)
    assert np.all(np.diff(h.qualities) > 0)
    slopes = np.diff(h.qualities) / np.diff(h.costs)
    assert np.all(np.diff(slopes) <= 1e-12)

    # mixtures and inverse agree with interpolation
    for x in rng.uniform(h.costs[0], h.costs[-1] + 1.0, 10):
        a, b, w = h.mixture(x)
        spent = min(x, h.costs[-1])
        assert (1 - w) * c[a] + w * c[b] == pytest.approx(spent)
        assert (1 - w) * q[a] + w * q[b] == pytest.approx(h.quality_at(x))
        if x <= h.costs[-1] and len(h) > 1:
            assert h.cost_at(h.quality_at(x)) == pytest.approx(x)

    # exact AIQ matches a fine midpoint-rule integral
    lo, hi = 0.0, 11.0
    grid = lo + (np.arange(20_000) + 0.5) * (hi - lo) / 20_000
    vals = np.nan_to_num(np.array([h.quality_at(g) for g in grid]), nan=0.0)
    assert aiq(h, lo, hi) == pytest.approx(vals.mean(), abs=1e-4)
