"""Cascade mechanics, threshold fitting and the policies, on tiny logs solved by hand."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from ladder.policies.base import Outcome, run_cascade, single_model
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.chains import BestChain, candidate_chains
from ladder.policies.dp import DPCascade
from ladder.policies.seed_heuristic import SeedHeuristic, seed_thresholds
from ladder.policies.stages import PredictorCache, chain_scores, replay_chunked
from ladder.policies.threshold import (
    ThresholdCascade,
    fit_thresholds,
    shadow_prices,
    stage_rewards,
)
from ladder.runlog import QueryTable
from ladder.runlog.table import SIGNAL_COLUMNS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_table(
    quality: object,
    cost: object,
    confidence: object = None,
    models: tuple[str, ...] | None = None,
) -> QueryTable:
    """A QueryTable built directly; `cost` may be one row (the same for every query)."""
    quality = np.asarray(quality, dtype=float)
    n, k = quality.shape
    cost = np.broadcast_to(np.asarray(cost, dtype=float), (n, k)).copy()
    signals = {name: np.full((n, k), np.nan) for name in SIGNAL_COLUMNS}
    if confidence is not None:
        signals["confidence"] = np.asarray(confidence, dtype=float).reshape(n, k)
    return QueryTable(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        models=models or tuple("abcdefgh"[:k]),
        quality=quality,
        cost=cost,
        signals=signals,
    )


def assert_same_outcome(a: Outcome, b: Outcome) -> None:
    np.testing.assert_array_equal(a.chosen, b.chosen)
    np.testing.assert_array_equal(a.last_run, b.last_run)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.cost, b.cost)


# --- run_cascade -------------------------------------------------------------------------------

# Three models a, b, c; per-query costs (they differ by query on purpose).
RC_QUALITY = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [0.5, 0.2, 0.9],
]
RC_COST = [
    [1.0, 2.0, 4.0],
    [1.0, 3.0, 5.0],
    [2.0, 2.0, 2.0],
    [1.0, 1.0, 10.0],
]
# stop decisions: q0 stops at stage 0; q1 at stage 1; q2 never (forced at the last stage);
# q3 would stop at stage 1 and 2, so stage 1.
RC_STOP = np.array(
    [
        [True, False, False],
        [False, True, False],
        [False, False, False],
        [False, True, True],
    ]
)


def test_run_cascade_costs_and_own_answers() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    stop = RC_STOP.copy()
    out = run_cascade(table, [0, 1, 2], stop)
    # stages reached: 0, 1, 2 (forced), 1
    np.testing.assert_array_equal(out.last_run, [0, 1, 2, 1])
    np.testing.assert_array_equal(out.chosen, [0, 1, 2, 1])
    # paid: q0 = 1; q1 = 1 + 3 = 4; q2 = 2 + 2 + 2 = 6; q3 = 1 + 1 = 2
    np.testing.assert_allclose(out.cost, [1.0, 4.0, 6.0, 2.0])
    # own answer at the stopping stage: 1, 1, 1, 0.2
    np.testing.assert_allclose(out.quality, [1.0, 1.0, 1.0, 0.2])
    assert out.mean_cost == pytest.approx(13 / 4)
    assert out.mean_quality == pytest.approx(3.2 / 4)
    # J = 0.8 − 0.1 · 3.25 = 0.475
    assert out.objective(0.1) == pytest.approx(0.475)
    assert out.stage_mix(table.models) == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})
    np.testing.assert_array_equal(stop, RC_STOP)  # the caller's array is not modified


def test_run_cascade_last_stage_always_stops() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    out = run_cascade(table, [0, 1, 2], np.zeros((4, 3), dtype=bool))
    np.testing.assert_array_equal(out.last_run, [2, 2, 2, 2])
    # everything paid: 7, 9, 6, 12
    np.testing.assert_allclose(out.cost, [7.0, 9.0, 6.0, 12.0])
    np.testing.assert_allclose(out.quality, [0.0, 0.0, 1.0, 0.9])
    assert out.stage_mix(table.models) == {"a": 0.0, "b": 0.0, "c": 1.0}


def test_run_cascade_best_so_far_returned() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    # chain positions returned when stopping at each stage
    returned = np.array(
        [
            [0, 0, 0],
            [0, 0, 1],  # q1 stops at stage 1 -> position 0 -> model a, quality 0
            [0, 1, 1],  # q2 stops at stage 2 -> position 1 -> model b, quality 0
            [0, 0, 2],  # q3 stops at stage 1 -> position 0 -> model a, quality 0.5
        ]
    )
    out = run_cascade(table, [0, 1, 2], RC_STOP, returned)
    np.testing.assert_array_equal(out.chosen, [0, 0, 1, 0])
    np.testing.assert_array_equal(out.last_run, [0, 1, 2, 1])  # stage mix is what ran
    np.testing.assert_allclose(out.quality, [1.0, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(out.cost, [1.0, 4.0, 6.0, 2.0])  # cost does not change


def test_run_cascade_subsequence_pays_only_its_stages() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    # chain a -> c (b skipped); nobody stops at a: paid a + c = 5, 6, 4, 11
    out = run_cascade(table, [0, 2], np.zeros((4, 2), dtype=bool))
    np.testing.assert_allclose(out.cost, [5.0, 6.0, 4.0, 11.0])
    np.testing.assert_array_equal(out.chosen, [2, 2, 2, 2])
    # q0 stops at a: paid 1, quality 1
    out = run_cascade(table, [0, 2], np.array([[True, False]] + [[False, False]] * 3))
    np.testing.assert_allclose(out.cost, [1.0, 6.0, 4.0, 11.0])
    np.testing.assert_allclose(out.quality, [1.0, 0.0, 1.0, 0.9])
    assert out.stage_mix(table.models) == pytest.approx({"a": 0.25, "b": 0.0, "c": 0.75})


def test_single_model() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    out = single_model(table, 1)
    np.testing.assert_allclose(out.quality, [0.0, 1.0, 0.0, 0.2])
    np.testing.assert_allclose(out.cost, [2.0, 3.0, 2.0, 1.0])


# --- fit_thresholds ----------------------------------------------------------------------------


def mean_reward(scores: np.ndarray, rewards: np.ndarray, thresholds: np.ndarray) -> float:
    stop = scores >= thresholds
    stop[:, -1] = True
    stage = stop.argmax(axis=1)
    return float(rewards[np.arange(len(stage)), stage].mean())


def test_fit_thresholds_two_stages_by_hand() -> None:
    # q0 = [1, 1, 0, 1, 0] at cost 1, q1 = [1, 0, 1, 1, 1] at cost 4, λ = 0.1:
    # R0 = q0 − 0.1 = [.9, .9, −.1, .9, −.1]; R1 = q1 − 0.5 = [.5, −.5, .5, .5, .5]
    # gain of stopping at 0 (R0 − R1) by descending score .9,.8,.6,.4,.2: .4, 1.4, −.6, .4, −.6
    # running sums: .4, 1.8, 1.2, 1.6, 1.0 -> best: stop the top two, θ0 = (.8 + .6) / 2 = .7
    # mean reward = mean R1 (= 1.5/5 = .3) + 1.8/5 = .66
    table = make_table(
        np.column_stack([[1, 1, 0, 1, 0], [1, 0, 1, 1, 1]]), [1.0, 4.0]
    )
    rewards = stage_rewards(table, [0, 1], 0.1)
    np.testing.assert_allclose(rewards[:, 0], [0.9, 0.9, -0.1, 0.9, -0.1])
    np.testing.assert_allclose(rewards[:, 1], [0.5, -0.5, 0.5, 0.5, 0.5])
    scores = np.column_stack([[0.9, 0.8, 0.6, 0.4, 0.2], [0.5] * 5])
    thresholds = fit_thresholds(scores, rewards)
    assert thresholds[0] == pytest.approx(0.7)
    assert thresholds[1] == -np.inf
    assert mean_reward(scores, rewards, thresholds) == pytest.approx(0.66)
    # the alternatives are worse: none stop .3, all stop .5, top four .62
    assert mean_reward(scores, rewards, np.array([np.inf, -np.inf])) == pytest.approx(0.3)
    assert mean_reward(scores, rewards, np.array([0.0, -np.inf])) == pytest.approx(0.5)


def test_fit_thresholds_three_stages_by_hand() -> None:
    # query: (s0, s1; R0, R1, R2)
    #   a: (.9,  .5;  1, 0, .3)    b: (.6, .8; 0, 1, .5)    c: (.3, .7; 0, .5, 1)
    #   d: (.2,  .3;  0, 0, 1)     e: (.95, .85; 0, 1, 0)
    # Stopping sets at stage 0 are top-m by s0 (e, a, b, c, d):
    #  none:   stage-1 gains R1 − R2 by s1 (e .85, b .8, c .7, a .5, d .3) = 1, .5, −.5, −.3, −1;
    #          running 1, 1.5, 1, .7, −.3 -> stop {e, b}, θ1 = .75;
    #          total e 1 + b 1 + c 1 + a .3 + d 1 = 4.3
    #  {e}:    rest best stop {b}: 0 + 1 + 1 + .3 + 1 = 3.3
    #  {e,a}:  0 + 1 + (b 1 + c 1 + d 1) = 4.0
    #  {e,a,b}: 0 + 1 + 0 + (c, d go on: 2) = 3.0; stopping more at stage 0 is worse still.
    # Optimum 4.3 / 5 = .86 with θ = (inf, .75, −inf).
    scores = np.array(
        [[0.9, 0.5, 0], [0.6, 0.8, 0], [0.3, 0.7, 0], [0.2, 0.3, 0], [0.95, 0.85, 0]]
    )
    rewards = np.array(
        [[1, 0, 0.3], [0, 1, 0.5], [0, 0.5, 1], [0, 0, 1], [0, 1, 0]], dtype=float
    )
    thresholds = fit_thresholds(scores, rewards)
    assert thresholds[0] == np.inf
    assert thresholds[1] == pytest.approx(0.75)
    assert thresholds[2] == -np.inf
    assert mean_reward(scores, rewards, thresholds) == pytest.approx(0.86)


def _cut_candidates(column: np.ndarray) -> np.ndarray:
    """Below every score, every midpoint between distinct scores, above every score."""
    u = np.unique(column)
    return np.r_[u[0] - 1.0, (u[1:] + u[:-1]) / 2, u[-1] + 1.0]


def _brute_force(scores: np.ndarray, rewards: np.ndarray) -> float:
    r = scores.shape[1]
    grids = [_cut_candidates(scores[:, i]) for i in range(r - 1)]
    return max(
        mean_reward(scores, rewards, np.r_[combo, -np.inf])
        for combo in itertools.product(*grids)
    )


def _random_problem(seed: int, r: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random((n, r))
    if seed % 2:
        scores = scores.round(1)  # odd seeds: tied scores
    quality = (rng.random((n, r)) < scores).astype(float)
    rewards = quality - 0.05 * np.cumsum(rng.uniform(1, 3, (n, r)), axis=1)
    return scores, rewards


@pytest.mark.parametrize("seed", range(40))
def test_fit_thresholds_two_stages_is_exact(seed: int) -> None:
    scores, rewards = _random_problem(seed, r=2)
    fitted = mean_reward(scores, rewards, fit_thresholds(scores, rewards))
    assert fitted == pytest.approx(_brute_force(scores, rewards), abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_fit_thresholds_three_stages_vs_brute_force(seed: int) -> None:
    # Coordinate ascent is not guaranteed to find the global optimum for r = 3 (it does on
    # most seeds, not all: 191 of 200 seeds of this generator), so assert the guarantees:
    # never above the brute-force optimum, never below any single-stage-only policy.
    scores, rewards = _random_problem(seed, r=3)
    thresholds = fit_thresholds(scores, rewards)
    fitted = mean_reward(scores, rewards, thresholds)
    assert thresholds[-1] == -np.inf
    assert fitted <= _brute_force(scores, rewards) + 1e-12
    assert fitted >= rewards.mean(axis=0).max() - 1e-12


def test_fit_thresholds_all_stop_and_none_stop() -> None:
    scores = np.array([[0.2, 0.0], [0.5, 0.0], [0.9, 0.0]])
    # stopping always better: the cut lies below the lowest score
    thresholds = fit_thresholds(scores, np.array([[1.0, 0.0]] * 3))
    assert np.all(scores[:, 0] >= thresholds[0])
    # escalating always better: nobody stops
    thresholds = fit_thresholds(scores, np.array([[0.0, 1.0]] * 3))
    assert thresholds[0] == np.inf


# --- ThresholdCascade and DPCascade end to end ---------------------------------------------------


def separable_log(n: int, seed: int, big_always_right: bool) -> QueryTable:
    """cheap (cost 1) is right iff i % 3 != 0 and its confidence separates right (.7–.95)
    from wrong (.1–.4); big (cost 10) is right except, unless big_always_right, where
    i % 6 == 1 (cheap right) and i % 9 == 0 (both wrong)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    right = i % 3 != 0
    confidence = np.where(right, rng.uniform(0.7, 0.95, n), rng.uniform(0.1, 0.4, n))
    big = np.ones(n)
    if not big_always_right:
        big[(i % 6 == 1) | (i % 9 == 0)] = 0.0
    conf = np.column_stack([confidence, np.full(n, np.nan)])
    return make_table(np.column_stack([right, big]), [1.0, 10.0], conf, ("cheap", "big"))


@pytest.fixture(scope="module")
def mixed() -> tuple[QueryTable, QueryTable]:
    return separable_log(60, 0, False), separable_log(60, 1, False)


@pytest.fixture(scope="module")
def big_right() -> tuple[QueryTable, QueryTable, PredictorCache]:
    train = separable_log(60, 2, True)
    return train, separable_log(60, 3, True), PredictorCache(train)


def test_threshold_cascade_escalates_exactly_the_wrong_ones(mixed) -> None:
    # 20 of 60 cheap answers are wrong; big is right on 13 of those (7 are i % 9 == 0).
    # Escalating a wrong one gains q_big − 10λ, stopping a right one gains 1 − q_big + 10λ > 0,
    # so with 13 − 200λ > 0 (λ < .065) the optimum escalates exactly the wrong ones and the
    # quality is the per-query best of the pair.
    train, test = mixed
    policy = ThresholdCascade(["cheap", "big"], lam=0.01).fit(train)
    for table in (train, test):
        out = policy.replay(table)
        np.testing.assert_array_equal(out.last_run == 1, table.quality[:, 0] == 0)
        assert out.mean_quality == pytest.approx(table.quality.max(axis=1).mean())
        # cost: 1 for everyone plus 10 for the 20 escalated: 1 + 10/3
        assert out.mean_cost == pytest.approx(1 + 10 / 3)
        decided = policy.decide(table, 0)
        np.testing.assert_array_equal(decided, out.last_run == 0)
    # judged on held-out folds: no better than the per-query best pair, and better than
    # either model alone (thresholds refitted on 48 queries may misplace a few of the 12)
    best_pair = train.quality.max(axis=1).mean() - 0.01 * (1 + 10 / 3)
    alone = max(train.quality[:, 0].mean() - 0.01, train.quality[:, 1].mean() - 0.11)
    assert alone < policy.train_objective_ <= best_pair + 1e-12


def test_threshold_cascade_huge_lambda_never_escalates(mixed) -> None:
    train, test = mixed
    policy = ThresholdCascade(["cheap", "big"], lam=1e6).fit(train)
    for table in (train, test):
        out = policy.replay(table)
        assert np.all(out.last_run == 0)
        assert out.mean_quality == pytest.approx(table.quality[:, 0].mean())  # 2/3
        assert out.mean_cost == pytest.approx(1.0)


@pytest.mark.parametrize("target", ["value", "realized"])
@pytest.mark.parametrize("best_so_far", [True, False])
def test_dp_cascade_huge_lambda_stops_at_first_stage(big_right, target, best_so_far) -> None:
    # continuation targets are ≈ −10λ = −1e7, far below any stop value in [0, 1]
    train, test, cache = big_right
    policy = DPCascade(["cheap", "big"], lam=1e6, target=target, best_so_far=best_so_far)
    policy.fit(train, cache)
    for table in (train, test):
        out = policy.replay(table)
        assert np.all(out.last_run == 0)
        assert np.all(out.chosen == 0)
        assert out.mean_cost == pytest.approx(1.0)
    assert policy.train_objective_ == pytest.approx(2 / 3 - 1e6)


@pytest.mark.parametrize("target", ["value", "realized"])
@pytest.mark.parametrize("best_so_far", [True, False])
def test_dp_cascade_free_escalation_reaches_quality_one(big_right, target, best_so_far) -> None:
    # λ = 0 and big always right: big's predicted quality is 1, the continuation is 1, so
    # every query either escalates or stops on an answer predicted (and being) right.
    train, test, cache = big_right
    policy = DPCascade(["cheap", "big"], lam=0.0, target=target, best_so_far=best_so_far)
    policy.fit(train, cache)
    for table in (train, test):
        out = policy.replay(table)
        assert out.mean_quality == 1.0
        np.testing.assert_array_equal(policy.decide(table, 0), out.last_run == 0)
        assert np.all(policy.decide(table, 1))
    assert policy.chain_ == ("cheap", "big")


# --- baselines -----------------------------------------------------------------------------------


def test_fixed_model() -> None:
    table = make_table(RC_QUALITY, RC_COST)
    policy = FixedModel().fit(table)
    assert policy.model_ == "c"  # default: the last (dearest) rung
    out = policy.replay(table)
    np.testing.assert_allclose(out.quality, [0.0, 0.0, 1.0, 0.9])
    np.testing.assert_allclose(out.cost, [4.0, 5.0, 2.0, 10.0])
    out = FixedModel("a").fit(table).replay(table)
    np.testing.assert_array_equal(out.chosen, [0, 0, 0, 0])
    assert out.mean_quality == pytest.approx(1.5 / 4)
    with pytest.raises(ValueError):
        FixedModel("zzz").fit(table)


def test_oracle_cheapest_correct_at_zero_lambda() -> None:
    quality = [
        [1, 1, 1],  # all right -> a (cheapest)
        [0, 1, 1],  # -> b
        [0, 0, 0],  # all wrong, tie at 0 -> a (cheapest)
        [0, 0, 1],  # -> c
        [1, 1, 0],  # costs 5, 2, 1: b is the cheapest correct one
        [0.5, 0.5, 0.5],  # costs 3, 3, 1: c
        [1, 1, 0],  # equal costs 2, 2, 2: tie -> lower index a
    ]
    cost = [
        [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [5, 2, 1], [3, 3, 1], [2, 2, 2],
    ]
    table = make_table(quality, cost)
    out = Oracle(lam=0.0).fit(table).replay(table)
    np.testing.assert_array_equal(out.chosen, [0, 1, 0, 2, 1, 2, 0])
    np.testing.assert_array_equal(out.last_run, out.chosen)
    np.testing.assert_allclose(out.quality, [1, 1, 0, 1, 1, 0.5, 1])
    np.testing.assert_allclose(out.cost, [1, 2, 1, 3, 2, 1, 2])  # only the chosen model paid


def test_oracle_trades_quality_for_cost() -> None:
    # λ = .3, costs 1, 2, 3: utilities q − .3c
    #   q = (.6, 1, 1):  .3, .4, .1  -> b
    #   q = (0, 0, 1):  −.3, −.6, .1 -> c
    #   q = (.9, 1, 1):  .6, .4, .1  -> a
    table = make_table([[0.6, 1, 1], [0, 0, 1], [0.9, 1, 1]], [1.0, 2.0, 3.0])
    out = Oracle(lam=0.3).fit(table).replay(table)
    np.testing.assert_array_equal(out.chosen, [1, 2, 0])
    assert out.objective(0.3) == pytest.approx((0.4 + 0.1 + 0.6) / 3)


def test_random_mix_matches_target_cost() -> None:
    # costs 1, 5, 10; mean qualities .5, .95, .8: cheap = a, most accurate = b.
    # target 3: p = (3 − 1) / (5 − 1) = .5; expected cost 1 + 4p = 3.
    n = 20_000
    rng = np.random.default_rng(0)
    quality = np.column_stack(
        [rng.random(n) < 0.5, rng.random(n) < 0.95, rng.random(n) < 0.8]
    ).astype(float)
    table = make_table(quality, [1.0, 5.0, 10.0])
    policy = RandomMix(target_cost=3.0).fit(table)
    assert policy.models_ == ("a", "b")
    assert policy.p_expensive_ == pytest.approx(0.5)
    out = policy.replay(table)
    assert set(np.unique(out.chosen)) == {0, 1}
    # sd of the mean cost: 4 · sqrt(.25 / 20000) ≈ .014
    assert out.mean_cost == pytest.approx(3.0, abs=0.06)
    assert np.mean(out.chosen == 1) == pytest.approx(0.5, abs=0.015)
    # replay is reproducible for a given random_state
    assert_same_outcome(out, policy.replay(table))


def test_random_mix_probability_is_clipped() -> None:
    table = make_table([[0, 1], [1, 1], [0, 0]], [1.0, 10.0])
    low = RandomMix(target_cost=0.5).fit(table)  # p = −.5/9 -> 0
    assert low.p_expensive_ == 0.0
    assert np.all(low.replay(table).chosen == 0)
    high = RandomMix(target_cost=100.0).fit(table)  # p = 99/9 -> 1
    assert high.p_expensive_ == 1.0
    assert np.all(high.replay(table).chosen == 1)


# --- seed heuristic ------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 1.0, 3.0])
def test_seed_thresholds_001(lam: float) -> None:
    # seed 001's costs 1, 4.5, 10:
    #   θ0 = (1 − .5 · 1/4.5) / (1 + λ) = (8/9) / (1 + λ)
    #   θ1 = (1 − .5 · 4.5/10) / (1 + λ) = .775 / (1 + λ)
    expected = [(8 / 9) / (1 + lam), 0.775 / (1 + lam), -np.inf]
    for costs in ([1.0, 4.5, 10.0], [2.0, 9.0, 20.0]):  # only cost ratios matter
        got = seed_thresholds("001", lam, np.array(costs), np.array([0.6, 0.8, np.nan]))
        np.testing.assert_allclose(got, expected)
    # λ = 1: 4/9 ≈ .4444 and .3875
    if lam == 1.0:
        np.testing.assert_allclose(expected[:2], [0.444444444444, 0.3875])


def test_seed_thresholds_000() -> None:
    # θ_i = (V_{i+1} + λ c_i) / (1 + λ (c_{i+1} − c_i)), costs in units of c0 = 1, 4.5, 10,
    # V = next stage's quality (.7, .9), λ = .1:
    #   θ0 = (.7 + .1) / (1 + .35) = .8 / 1.35 ≈ .592593
    #   θ1 = (.9 + .45) / (1 + .55) = 1.35 / 1.55 ≈ .870968
    for costs in ([1.0, 4.5, 10.0], [2.0, 9.0, 20.0]):
        got = seed_thresholds("000", 0.1, np.array(costs), np.array([0.7, 0.9, np.nan]))
        np.testing.assert_allclose(got, [0.8 / 1.35, 1.35 / 1.55, -np.inf])
        np.testing.assert_allclose(got[:2], [0.592593, 0.870968], atol=1e-6)
    with pytest.raises(ValueError):
        seed_thresholds("002", 0.1, np.array([1.0, 2.0]), np.array([0.5, np.nan]))


def test_seed_heuristic_policy_uses_the_formula(mixed) -> None:
    train, test = mixed
    policy = SeedHeuristic(["cheap", "big"], lam=1.0).fit(train)
    # costs 1 and 10: θ0 = (1 − .5/10) / 2 = .475
    np.testing.assert_allclose(policy.thresholds_, [0.475, -np.inf])
    out = policy.replay(test)
    assert np.all(out.cost[out.last_run == 0] == 1.0)
    assert np.all(out.cost[out.last_run == 1] == 11.0)


# --- chains --------------------------------------------------------------------------------------


def test_candidate_chains_count_and_order() -> None:
    models = ("a", "b", "c", "d")
    chains = list(candidate_chains(models, 2))
    # 4 singles + C(4, 2) = 6 pairs + the full ladder = 11
    assert len(chains) == 11
    assert chains[:4] == [("a",), ("b",), ("c",), ("d",)]
    assert chains[4:10] == [
        ("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d"),
    ]
    assert chains[-1] == models
    for chain in chains:  # every chain keeps the ladder order
        positions = [models.index(m) for m in chain]
        assert positions == sorted(positions)
    # when max_stages reaches k the full ladder is not repeated: 4 + 6 + 4 + 1 = 15
    chains = list(candidate_chains(models, 4))
    assert len(chains) == 15 == len(set(chains))
    assert len(list(candidate_chains(models, 9))) == 15


@pytest.fixture(scope="module")
def dominated_log() -> QueryTable:
    # b (cost 2) is always right; a (cost 1) and c (cost 3) are both wrong on every
    # fourth query, so any chain without b has quality < 1 and at λ = 0 loses.
    rng = np.random.default_rng(5)
    n = 60
    i = np.arange(n)
    a = np.where(i % 4 == 0, 0.0, (rng.random(n) < 0.6).astype(float))
    c = np.where(i % 4 == 0, 0.0, (rng.random(n) < 0.8).astype(float))
    quality = np.column_stack([a, np.ones(n), c])
    confidence = rng.uniform(0.2, 0.9, (n, 3))
    return make_table(quality, [1.0, 2.0, 3.0], confidence)


@pytest.mark.parametrize("kind", ["threshold", "dp"])
def test_best_chain_contains_dominant_model(dominated_log, kind: str) -> None:
    policy = BestChain(kind=kind, lam=0.0, max_stages=3, dp_candidates=2).fit(dominated_log)
    assert "b" in policy.chain_
    assert policy.family == kind
    assert isinstance(policy.policy_, ThresholdCascade if kind == "threshold" else DPCascade)
    out = policy.replay(dominated_log)
    assert_same_outcome(out, policy.policy_.replay(dominated_log))
    if kind == "threshold":
        assert policy.train_objective_ == pytest.approx(1.0)
        assert out.mean_quality == pytest.approx(1.0)
    with pytest.raises(ValueError):
        BestChain(kind="nope").fit(dominated_log)


# --- real data -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mmlu_pair() -> QueryTable:
    folder = DATA / "zellinger-cascades"
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is absent (real data lives outside the repo)")
    from ladder.runlog.converters import convert

    df = convert(folder, "zellinger")
    return QueryTable.from_runlog(
        df, models=["gpt-4o-mini", "qwen2.5-72b-instruct"], benchmark="mmlu"
    )


@pytest.mark.parametrize("kind", ["threshold", "dp"])
def test_zellinger_mmlu_cascade_between_its_models(mmlu_pair: QueryTable, kind: str) -> None:
    chain = ["gpt-4o-mini", "qwen2.5-72b-instruct"]
    train = mmlu_pair.rows(mmlu_pair.split == "train")
    test = mmlu_pair.rows(mmlu_pair.split == "test")
    assert (train.n, test.n) == (285, 1531)
    cls = ThresholdCascade if kind == "threshold" else DPCascade
    policy = cls(chain, lam=1000.0).fit(train)
    out = policy.replay(test)
    low, high = sorted(test.mean_quality())  # .7492 and .8204
    assert low - 0.01 <= out.mean_quality <= high + 0.01
    assert out.mean_cost < test.mean_cost().sum()


# --- chunked replay ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ThresholdCascade(lam=0.02),
        lambda: DPCascade(lam=0.02),
        lambda: DPCascade(lam=0.02, best_so_far=False, target="realized"),
        lambda: SeedHeuristic(lam=0.5),
    ],
)
def test_sequential_chunked_replay_equals_all_stages_rule(make) -> None:
    # the live path (stage by stage, only climbing queries, in chunks) and the evaluation's
    # path (every stage's scores at once, `_outcome`) must take the same decisions
    rng = np.random.default_rng(3)
    n = 103
    confidence = rng.random((n, 3))
    quality = (rng.random((n, 3)) < confidence).astype(float)
    answers = rng.integers(0, 3, (n, 3))
    table = dataclasses.replace(make_table(quality, [1.0, 3.0, 9.0], confidence), answers=answers)
    policy = make().fit(table)
    chain = list(range(3))
    all_stages = policy._outcome(table, chain, chain_scores(table, chain, policy.predictors_))

    def sequential(part: QueryTable, cache: object) -> Outcome:
        return policy._replay_sequential(part, chain)

    assert_same_outcome(replay_chunked(table, None, sequential, chunk=10), all_stages)
    assert_same_outcome(policy.replay(table), all_stages)
    for stage in range(3):
        stops = policy.decide(table, stage)
        assert stops.shape == (n,)
        reached = all_stages.last_run >= stage
        # a query that stopped at this stage was told to stop here
        assert stops[all_stages.last_run == stage].all()
        assert not stops[reached & (all_stages.last_run > stage)].any()


def test_shadow_price_is_marginal_quality_per_marginal_cost() -> None:
    # 10 queries, 2 stages, θ_0 = 0.5: all 10 reach stage 0 and all are in the band (≥ 10).
    # Escalating every one of them: Δq = mean(q1 − q0) = (6 − 3) / 10 = 0.3,
    # Δc = mean(paid1 − paid0) = mean(c1) = 2.0, so the rate is 0.3 / 2.0 = 0.15.
    scores = np.column_stack([np.linspace(0, 1, 10), np.ones(10)])
    quality = np.column_stack([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]])
    paid = np.column_stack([np.ones(10), np.full(10, 3.0)])
    rates = shadow_prices(scores, quality.astype(float), paid, np.array([0.5, -np.inf]))
    assert rates == pytest.approx([0.15])
    # an unused boundary (everyone goes on) has no marginal queries
    assert np.isnan(shadow_prices(scores, quality.astype(float), paid,
                                  np.array([np.inf, -np.inf]))[0])


def test_dp_best_chain_fits_only_the_given_chains() -> None:
    rng = np.random.default_rng(5)
    confidence = rng.random((80, 3))
    quality = (rng.random((80, 3)) < confidence).astype(float)
    table = make_table(quality, [1.0, 3.0, 9.0], confidence)
    ranked = BestChain("threshold", lam=0.01).fit(table).ranking_
    assert len(ranked) == 7 and len(set(ranked)) == 7  # 3 + 3 + 1 chains of k = 3, max 3
    policy = BestChain("dp", lam=0.01, chains=[("b", "c")]).fit(table)
    assert policy.chain_ == ("b", "c")
    assert policy.policy_.target in ("value", "realized")


def test_dp_refit_decides_with_the_new_value_models() -> None:
    rng = np.random.default_rng(7)
    confidence = rng.random((90, 3))
    quality = (rng.random((90, 3)) < confidence).astype(float)
    table = make_table(quality, [1.0, 3.0, 9.0], confidence)
    policy = DPCascade(lam=0.0).fit(table)
    policy.decide(table, 0)  # builds the numpy form of the λ = 0 value models
    policy.set_params(lam=1.0).fit(table)
    fresh = DPCascade(lam=1.0).fit(table)
    for stage in range(2):
        np.testing.assert_array_equal(policy.decide(table, stage), fresh.decide(table, stage))
