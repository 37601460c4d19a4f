"""Operating points with a guarantee (theory.md §10): p-values by hand, the walk, coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from ladder.policies.base import Outcome
from ladder.policies.operating import (
    Candidates,
    binomial_p_value,
    choose_by_budget,
    choose_by_quality,
    fixed_sequence,
    hb_p_value,
    hb_risk_p_value,
    t_cost_p_value,
    wsr_p_value,
)

# --- p-values ---------------------------------------------------------------------------


def _binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_binomial_exact_small_case() -> None:
    # 9 of 10 correct, H: accuracy < 0.7. p = P(Bin(10, .7) ≥ 9) = 10·.7⁹·.3 + .7¹⁰.
    v = [1] * 9 + [0]
    assert binomial_p_value(v, 0.7) == pytest.approx(10 * 0.7**9 * 0.3 + 0.7**10, rel=1e-12)
    assert binomial_p_value([0] * 10, 0.7) == pytest.approx(1.0)
    assert binomial_p_value([1] * 10, 1.0) == pytest.approx(1.0)  # perfection: never certified
    assert binomial_p_value(v, 0.0) == 0.0
    with pytest.raises(ValueError, match="0 or 1"):
        binomial_p_value([0.5, 1.0], 0.7)


def test_hb_known_case_bentkus_term_binds() -> None:
    # n=100, mean loss .05, α=.1. h = .05·ln(.05/.1) + .95·ln(.95/.9) = 0.016699...
    # Hoeffding: exp(−100 h) = 0.1882; Bentkus: e·P(Bin(100, .1) ≤ 5) = e·0.05758 = 0.1565.
    h = 0.05 * math.log(0.5) + 0.95 * math.log(0.95 / 0.9)
    hoeffding, bentkus = math.exp(-100 * h), math.e * _binom_cdf(5, 100, 0.1)
    assert bentkus < hoeffding
    assert hb_risk_p_value(0.05, 100, 0.1) == pytest.approx(bentkus, rel=1e-10)
    assert hb_risk_p_value(0.05, 100, 0.1) == pytest.approx(0.15651, abs=1e-5)


def test_hb_known_case_hoeffding_term_binds() -> None:
    # n=10, mean loss .0, α=.5: Hoeffding exp(−10·ln 2) = 2⁻¹⁰; Bentkus e·.5¹⁰ is larger.
    assert hb_risk_p_value(0.0, 10, 0.5) == pytest.approx(2.0**-10, rel=1e-12)
    # Mean loss at or above α: nothing to reject.
    assert hb_risk_p_value(0.1, 100, 0.1) == 1.0
    assert hb_risk_p_value(0.3, 100, 0.1) == 1.0
    assert hb_risk_p_value(0.3, 100, 1.0) == 0.0  # H: E[L] > 1 is empty
    assert hb_risk_p_value(0.0, 100, 0.0) == 1.0  # zero risk is never certified


def test_hb_quality_is_hb_risk_on_the_loss() -> None:
    v = np.array([1.0, 0.8, 0.9, 1.0, 0.6, 1.0, 0.95, 1.0])
    assert hb_p_value(v, 0.7) == pytest.approx(hb_risk_p_value(1 - v.mean(), 8, 0.3))


def test_hb_monotone_in_n_and_mean() -> None:
    ps_n = [
        hb_p_value([1] * round(0.9 * n) + [0] * round(0.1 * n), 0.85)
        for n in (50, 100, 200, 400, 800)
    ]
    assert all(a > b for a, b in itertools.pairwise(ps_n))
    ps_mean = [hb_p_value([1] * k + [0] * (200 - k), 0.85) for k in range(170, 201, 5)]
    assert all(a > b for a, b in itertools.pairwise(ps_mean))


def test_hb_sits_between_exact_binomial_and_e_times_it_on_01_data() -> None:
    # Chernoff ≥ the exact tail, and the Bentkus term is e × the exact tail.
    for n, k, target in [(50, 47, 0.85), (200, 180, 0.85), (30, 30, 0.9), (500, 440, 0.86)]:
        v = [1] * k + [0] * (n - k)
        exact, hb = binomial_p_value(v, target), hb_p_value(v, target)
        assert exact <= hb + 1e-15
        assert hb <= math.e * exact + 1e-12


def test_hb_is_valid_at_the_boundary_for_graded_values() -> None:
    # Beta(9, 1) has mean .9: with H true at its boundary, P(p ≤ δ) ≤ δ.
    rng = np.random.default_rng(1)
    ps = [hb_p_value(rng.beta(9.0, 1.0, 60), 0.9) for _ in range(2000)]
    assert np.mean(np.array(ps) <= 0.1) <= 0.1


def test_wsr_hand_case() -> None:
    # Four perfect answers, target .5 (α = .5 on the loss), δ = .1: the running variance
    # stays ≤ .25, so every bet is min(1, √(2 ln 10 / (4 σ̂²))) = 1 and each query multiplies
    # the wealth by 1 − (0 − .5) = 1.5. p = 1 / 1.5⁴.
    assert wsr_p_value([1.0] * 4, 0.5, 0.1) == pytest.approx(1.5**-4)
    assert wsr_p_value([0.4] * 50, 0.5, 0.1) == 1.0  # below the target: the wealth only falls
    assert wsr_p_value([0.3, 0.9], 0.0, 0.1) == 0.0


def test_wsr_is_valid_and_adapts_to_variance() -> None:
    rng = np.random.default_rng(2)
    ps = [wsr_p_value(rng.beta(9.0, 1.0, 60), 0.9, 0.1) for _ in range(2000)]
    assert np.mean(np.array(ps) <= 0.1) <= 0.1
    # Mean .9 from values in [.85, .95]: the variance is tiny, so WSR certifies .88 at
    # n = 200 where Hoeffding–Bentkus, which only knows the range, cannot.
    v = 0.85 + 0.1 * rng.random(200)
    assert wsr_p_value(v, 0.88, 0.1) < 0.05 < 0.5 < hb_p_value(v, 0.88)


def test_t_cost_p_value() -> None:
    c = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sd 1.29099, t = (2.5 − 4)/(sd/2)
    assert t_cost_p_value(c, 4.0) == pytest.approx(stats.t.cdf(-1.5 / (1.2909944 / 2), 3))
    assert t_cost_p_value([2.0, 2.0], 3.0) == 0.0
    assert t_cost_p_value([2.0, 2.0], 1.0) == 1.0


# --- the walk ---------------------------------------------------------------------------


def test_fixed_sequence_stops_at_first_non_rejection() -> None:
    assert fixed_sequence([0.01, 0.05, 0.2, 0.01], 0.1) == 2  # the last .01 is never reached
    assert fixed_sequence([0.5, 0.01], 0.1) == 0
    assert fixed_sequence([0.01, 0.1], 0.1) == 2  # p ≤ δ rejects
    assert fixed_sequence([0.01, float("nan"), 0.01], 0.1) == 1
    assert fixed_sequence([], 0.1) == 0


def _three(n: int = 100) -> Candidates:
    # Costs 1, 2, 3. On calibration, 0 and 2 are always right, 1 is right half the time.
    q = np.column_stack([np.ones(n), np.arange(n) % 2, np.ones(n)]).astype(float)
    return Candidates(q, np.tile([1.0, 2.0, 3.0], (n, 1)))


def test_choose_by_quality_stops_where_the_walk_stops() -> None:
    # The guide (fit data) orders 0 < 1 < 2 on a concave hull; test order is 2, 1, 0.
    # p(2) tiny, p(1) ≈ 1: candidate 0 passes too but is never reached.
    res = choose_by_quality(_three(), 0.8, mixtures=None, guide=([1, 2, 3], [0.7, 0.9, 1.0]))
    assert res.ladder == ((2, 2, 0.0), (1, 1, 0.0), (0, 0, 0.0))
    assert res.rejected == 1 and not res.fallback
    assert (res.index, res.mix_index, res.weight) == (2, 2, 0.0)
    assert res.p_value == pytest.approx(0.8**100)  # exact binomial, 100 of 100
    assert res.p_values[1] > 0.9 and res.p_values[2] < 1e-9
    assert res.methods == ("binomial",) * 3
    assert (res.quality, res.cost, res.n) == (1.0, 3.0, 100)


def test_choose_by_quality_fallback_is_flagged() -> None:
    guide = ([1, 2, 3], [0.7, 0.9, 1.0])
    res = choose_by_quality(_three(), 1.0, mixtures=None, guide=guide)  # perfection: never
    assert res.fallback and res.rejected == 0
    assert res.index == 2  # the dearest point on the ladder: honest, not certified
    assert res.promise.startswith("not certified")


def test_ladder_has_the_mixture_grid_dearest_first_and_guide_is_checked() -> None:
    guide = ([1, 2, 3], [0.7, 0.9, 1.0])
    res = choose_by_quality(_three(), 0.8, mixtures=0.25, guide=guide)
    assert len(res.ladder) == 3 + 2 * 3  # three vertices, w = .25, .5, .75 between each pair
    assert res.ladder[:2] == ((2, 2, 0.0), (1, 2, 0.75))
    costs = [(1 - w) * (a + 1) + w * (b + 1) for a, b, w in res.ladder]
    assert costs == sorted(costs, reverse=True)
    assert res.promise == "mean quality ≥ 0.8, with probability ≥ 0.9 over the calibration queries"
    with pytest.raises(ValueError, match="one mean cost"):
        choose_by_quality(_three(), 0.8, guide=([1, 2], [0.7, 0.9]))


def test_mixture_reached_between_hull_vertices() -> None:
    # Vertex a: cost 1, accuracy .5; vertex b: cost 10, accuracy 1. Target .8 on n = 2000:
    # a fails, b passes, and mixtures with (1 − w)·.5 + w ≥ .8 + margin pass under HB.
    n = 2000
    q = np.column_stack([np.arange(n) % 2, np.ones(n)]).astype(float)
    cands = Candidates(q, np.tile([1.0, 10.0], (n, 1)))
    res = choose_by_quality(cands, 0.8, delta=0.1)
    assert not res.fallback and 0.0 < res.weight < 1.0
    assert (res.index, res.mix_index) == (0, 1)
    assert res.quality == pytest.approx(0.5 * (1 - res.weight) + res.weight)
    assert res.cost == pytest.approx(1 + 9 * res.weight)
    assert res.methods[0] == "binomial" and set(res.methods[1:-1]) == {"wsr"}
    assert res.weight == pytest.approx(0.7)  # .85 passes, .8 (w = .6) is the target itself
    assert res.realised(cands) == pytest.approx((res.quality, res.cost))
    test = Candidates(np.column_stack([np.zeros(10), np.ones(10)]), np.tile([2.0, 4.0], (10, 1)))
    assert res.realised(test) == pytest.approx((res.weight, 2 + 2 * res.weight))


def test_candidates_from_outcomes_and_validation() -> None:
    i = np.zeros(3, dtype=int)
    outs = [
        Outcome(i, i, np.array([1.0, 0, 1]), np.array([1.0, 1, 2])),
        Outcome(i, i, np.array([1.0, 1, 1]), np.array([3.0, 3, 3])),
    ]
    c = Candidates.from_outcomes(outs)
    assert c.quality.shape == (3, 2) and c.cost[2, 0] == 2.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Candidates(np.array([[1.5]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="≥ 0"):
        Candidates(np.array([[1.0]]), np.array([[-1.0]]))


# --- coverage by simulation ---------------------------------------------------------------

TRUE_Q = np.array([0.60, 0.70, 0.78, 0.84, 0.88, 0.90])
BASE_COST = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
REPS = 500


def _draw(rng: np.random.Generator, n: int) -> Candidates:
    # Nested policies, as in a cascade: one latent difficulty per query, so a dearer
    # policy is right wherever a cheaper one is. Costs vary per query, bounded by 1.5×.
    u = rng.random(n)
    q = (u[:, None] < TRUE_Q).astype(float)
    return Candidates(q, BASE_COST * rng.uniform(0.5, 1.5, (n, 1)))


def _true(res, values: np.ndarray) -> float:
    return (1 - res.weight) * values[res.index] + res.weight * values[res.mix_index]


def _naive_quality(c: Candidates, target: float) -> float:
    """Cheapest grid point whose calibration mean meets the target: no guarantee."""
    best = None
    for a in range(len(TRUE_Q) - 1):
        for w in np.linspace(0, 1, 11):
            if (1 - w) * c.quality[:, a].mean() + w * c.quality[:, a + 1].mean() >= target:
                cost = (1 - w) * BASE_COST[a] + w * BASE_COST[a + 1]
                if best is None or cost < best[0]:
                    best = (cost, (1 - w) * TRUE_Q[a] + w * TRUE_Q[a + 1])
    return TRUE_Q[-1] if best is None else best[1]


@pytest.mark.slow
@pytest.mark.parametrize(("mixtures", "method"), [(0.1, "wsr"), (0.1, "hb"), (None, "wsr")])
def test_quality_target_met_in_one_minus_delta_of_resamples(
    mixtures: float | None, method: str
) -> None:
    rng = np.random.default_rng(7)
    # .849 sits just under the target, where an uncorrected choice breaks the promise.
    target, delta, n = 0.8495, 0.1, 400
    met, naive_met, costs = [], [], []
    for _ in range(REPS):
        c = _draw(rng, n)
        res = choose_by_quality(c, target, delta, mixtures=mixtures, method=method)
        met.append(res.fallback or _true(res, TRUE_Q) >= target)
        naive_met.append(_naive_quality(c, target) >= target)
        costs.append(_true(res, BASE_COST))
    assert np.mean(met) >= 1 - delta - 0.02
    assert np.mean(naive_met) < 1 - delta  # the setup can fail: without the test it does
    assert np.median(costs) < BASE_COST[-1]  # and it is not met by always paying the most


@pytest.mark.slow
def test_budget_met_in_one_minus_delta_of_resamples() -> None:
    rng = np.random.default_rng(8)
    # Between costs 4 and 8, w = .3 costs 5.2 on average: just over the budget.
    budget, delta, n = 5.15, 0.1, 400
    for method in ("wsr", "hb", "t"):
        met, naive_met, quals = [], [], []
        for _ in range(REPS):
            c = _draw(rng, n)
            res = choose_by_budget(c, budget, delta, method=method, cost_bound=48.0)
            met.append(res.fallback or _true(res, BASE_COST) <= budget)
            mean_c = 0.7 * c.cost[:, 2].mean() + 0.3 * c.cost[:, 3].mean()
            naive_met.append(mean_c > budget)  # naive deploys w = .3 when it looks affordable
            quals.append(_true(res, TRUE_Q))
        assert np.mean(met) >= 1 - delta - 0.02, method
        assert np.mean(naive_met) < 1 - delta
        assert np.median(quals) > TRUE_Q[1]  # it does spend the budget


def test_budget_fallback_and_bound() -> None:
    c = _draw(np.random.default_rng(0), 100)
    res = choose_by_budget(c, 0.1)  # cheaper than any candidate
    assert res.fallback and res.index == 0 and res.mode == "budget"
    res = choose_by_budget(c, 1e6, mixtures=None)  # budget above every cost
    assert not res.fallback and res.index == len(TRUE_Q) - 1
    with pytest.raises(ValueError, match="exceeds cost_bound"):
        choose_by_budget(c, 5.0, cost_bound=10.0)


@pytest.mark.slow
def test_relative_target_against_the_best_reference() -> None:
    # References = every single model, so the best one is not picked on calibration data.
    rng = np.random.default_rng(9)
    frac, delta, n = 0.95, 0.1, 1000
    goal = frac * TRUE_Q.max()  # .855
    met, certified = [], []
    for _ in range(REPS // 2):
        c = _draw(rng, n)
        res = choose_by_quality(c, frac, delta, reference=c.quality)
        assert res.relative and res.reference_quality == pytest.approx(c.quality[:, -1].mean())
        met.append(res.fallback or _true(res, TRUE_Q) >= goal)
        certified.append(not res.fallback)
    assert np.mean(met) >= 1 - delta - 0.02
    assert np.mean(certified) > 0.5


def test_relative_p_value_is_the_max_over_references() -> None:
    c = _draw(np.random.default_rng(3), 300)
    one = [choose_by_quality(c, 0.9, reference=c.quality[:, r], mixtures=None) for r in (4, 5)]
    both = choose_by_quality(c, 0.9, reference=c.quality[:, [4, 5]], mixtures=None)
    assert both.p_values == tuple(
        max(a, b) for a, b in zip(*(o.p_values for o in one), strict=True)
    )
    # Paired by hand for the dearest against reference 5: z = (q − .9 q_ref + .9)/1.9.
    z = (c.quality[:, 5] * 0.1 + 0.9) / 1.9
    assert one[1].p_values[0] == pytest.approx(wsr_p_value(z, 0.9 / 1.9, 0.1))
    hb = choose_by_quality(c, 0.9, reference=c.quality[:, 5], mixtures=None, method="hb")
    assert hb.p_values[0] == pytest.approx(hb_p_value(z, 0.9 / 1.9))
    assert hb.methods[0] == "hb-paired"
