"""Plug-in tuning targets, the answer vote and `auto`, on logs checked by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ladder.evaluate.experiment import evaluate
from ladder.policies.auto import AutoCascade
from ladder.policies.stages import PredictorCache, chain_scores, vote_position
from ladder.policies.threshold import ThresholdCascade, fit_thresholds, stage_rewards
from ladder.runlog import QueryTable
from ladder.runlog.table import SIGNAL_COLUMNS


def table_of(quality: np.ndarray, cost: list[float], confidence: np.ndarray,
             answers: np.ndarray | None = None) -> QueryTable:
    n, k = quality.shape
    signals = {name: np.full((n, k), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = confidence
    return QueryTable(np.array([f"q{i}" for i in range(n)], dtype=object),
                      tuple("abcdefgh"[:k]), quality, np.tile(cost, (n, 1)), signals,
                      answers=answers)


def noisy_log(n: int, seed: int) -> QueryTable:
    rng = np.random.default_rng(seed)
    confidence = rng.random((n, 2))
    quality = (rng.random((n, 2)) < 0.2 + 0.7 * confidence).astype(float)
    answers = np.where(quality == 1, 0, rng.integers(1, 4, (n, 2)))
    return table_of(quality, [1.0, 5.0], confidence, answers)


def test_plugin_targets_by_hand_with_missing_labels() -> None:
    table = noisy_log(80, 0)
    table.quality[:5, 1] = np.nan  # five queries never labelled for model b
    cache = PredictorCache(table)
    p_hat = np.column_stack([cache.scores(table, [m])[:, 0] for m in range(2)])
    assert np.all(np.isfinite(p_hat))
    for alpha in (0.0, 0.3, 1.0):
        targets = cache.targets(table, alpha)
        # labelled cells: α·q + (1 − α)·p̂; unlabelled: p̂ whatever α
        expected = alpha * table.quality + (1 - alpha) * p_hat
        expected[:5, 1] = p_hat[:5, 1]
        np.testing.assert_allclose(targets, expected, atol=1e-12)
    np.testing.assert_array_equal(cache.targets(table, 1.0)[5:], table.quality[5:])
    # α = 0 tunes on predictions only: thresholds fitted on those targets
    policy = ThresholdCascade(["a", "b"], lam=0.01, alpha=0.0).fit(table, cache)
    assert np.isfinite(policy.train_objective_)


def test_unlabelled_rows_change_the_tuning_only_through_their_signals() -> None:
    table = noisy_log(120, 1)
    blinded = dataclasses.replace(table, quality=table.quality.copy())
    blinded.quality[60:] = np.nan  # the second half: signals only
    cache = PredictorCache(blinded)
    labelled_only = table.rows(np.arange(60))
    # the predictors see only the labelled half, so their out-of-fold scores there agree
    np.testing.assert_allclose(cache.scores(blinded, [0])[:60, 0],
                               PredictorCache(labelled_only).scores(labelled_only, [0])[:, 0],
                               atol=1e-12)
    # tuning uses every row: an unlabelled one through p̂, a labelled one through α-blend
    policy = ThresholdCascade(["a", "b"], lam=0.02, alpha=0.5).fit(blinded, cache)
    p_hat = np.column_stack([cache.scores(blinded, [m])[:, 0] for m in range(2)])
    filled = np.where(np.isnan(blinded.quality), p_hat, 0.5 * blinded.quality + 0.5 * p_hat)
    scores = cache.scores(blinded, [0, 1])
    expected = fit_thresholds(scores, stage_rewards(blinded, [0, 1], 0.02, filled))
    np.testing.assert_array_equal(policy.thresholds_, expected)


def test_vote_position_by_hand() -> None:
    scores = np.array([[0.6, 0.3, 0.4],    # a alone .6 vs b+c agreeing .7 -> the pair, c
                       [0.6, 0.3, 0.2],    # a .6 vs b+c .5 -> a
                       [0.5, 0.5, 0.1],    # all differ: best score, tie -> first
                       [0.2, 0.9, 0.3]])   # a and c agree on a missing code? no: −1 alone
    codes = np.array([[0, 1, 1], [0, 1, 1], [0, 1, 2], [-1, 3, -1]])
    np.testing.assert_array_equal(vote_position(scores, codes), [2, 0, 0, 1])
    np.testing.assert_array_equal(vote_position(scores, None), scores.argmax(axis=1))


def test_vote_returns_the_weighted_majority_answer() -> None:
    # right answers share code 0, wrong ones scatter: the vote can return a's answer after
    # climbing to b, a plain cascade never does
    table = noisy_log(90, 2)
    voted = ThresholdCascade(["a", "b"], lam=0.0, vote=True).fit(table)
    plain = ThresholdCascade(["a", "b"], lam=0.0).fit(table)
    out_v, out_p = voted.replay(table), plain.replay(table)
    chosen_differs = out_v.chosen != out_v.last_run
    assert chosen_differs.any() and not (out_p.chosen != out_p.last_run).any()
    # where the vote returned a's answer after running b, a's predicted quality outweighed b's
    rows = np.flatnonzero(chosen_differs)
    scores = chain_scores(table, [0, 1], voted.predictors_)  # what the replay decided on
    assert np.all(out_v.chosen[rows] == 0)
    assert np.all(table.answers[rows, 0] != table.answers[rows, 1])
    assert np.all(scores[rows, 0] >= scores[rows, 1])


def test_auto_keeps_the_best_held_out_candidate_and_the_predicted_best_model() -> None:
    table = noisy_log(120, 3)
    cache = PredictorCache(table)
    auto = AutoCascade(lam=0.01, max_stages=2).fit(table, cache)
    objectives = [c["objective"] for c in auto.candidates_]
    assert auto.train_objective_ == max(objectives)
    assert auto.candidates_[0]["kind"] == "fixed"  # always a candidate
    assert {c.get("alpha") for c in auto.candidates_[1:]} >= {0.0, 0.5, 1.0}
    assert auto.choice_ in [{k: v for k, v in c.items() if k != "objective"}
                            for c in auto.candidates_]


def test_auto_never_looks_at_test_labels() -> None:
    train, test = noisy_log(100, 4), noisy_log(100, 5)
    shuffled = dataclasses.replace(
        test, quality=np.random.default_rng(0).permutation(test.quality))
    kwargs = {"families": ("fixed", "threshold", "dp", "auto"), "n_lambdas": 4,
              "max_stages": 2, "n_resamples": 0}
    first, second = evaluate(train, test, **kwargs), evaluate(train, shuffled, **kwargs)
    for a, b in zip(first.points, second.points, strict=True):
        assert (a.family, a.lam, a.chain, a.choice) == (b.family, b.lam, b.chain, b.choice)
        assert a.cost == pytest.approx(b.cost)  # same decisions, so the same cost


def test_unlabelled_test_rows_are_never_scored() -> None:
    from ladder.runlog import RunLogError

    train, test = noisy_log(60, 6), noisy_log(40, 7)
    kwargs = {"families": ("fixed", "threshold"), "n_lambdas": 2, "max_stages": 2,
              "n_resamples": 0}
    partly = dataclasses.replace(test, quality=test.quality.copy())
    partly.quality[:10, 1] = np.nan
    evaluation = evaluate(train, partly, **kwargs)
    assert evaluation.n_test == 30
    assert evaluation.models[1]["quality"] == pytest.approx(test.quality[10:, 1].mean())
    blank = dataclasses.replace(test, quality=np.full_like(test.quality, np.nan))
    with pytest.raises(RunLogError, match="no labelled query"):
        evaluate(train, blank, **kwargs)


def test_quality_target_is_chosen_on_train_and_replayed_on_test() -> None:
    train, test = noisy_log(200, 8), noisy_log(200, 9)
    evaluation = evaluate(train, test, families=("fixed", "threshold", "auto"), n_lambdas=4,
                          max_stages=2, n_resamples=0)
    for family in ("threshold", "auto"):
        target = evaluation.summary[family]["target_98"]
        assert target["target"] == 0.98 and target["delta"] == 0.1
        best = max(m["quality"] for m in evaluation.models)
        assert target["test_target"] == pytest.approx(0.98 * best)
        assert target["met"] == (target["test_quality"] >= target["test_target"])
        # the chosen point is a policy of the sweep or a single model, named as such
        assert target["chosen"].startswith((f"{family} λ=", "fixed "))
    # the choice does not depend on test labels
    shuffled = dataclasses.replace(
        test, quality=np.random.default_rng(1).permutation(test.quality))
    again = evaluate(train, shuffled, families=("fixed", "threshold", "auto"), n_lambdas=4,
                     max_stages=2, n_resamples=0)
    assert again.summary["auto"]["target_98"]["chosen"] == \
        evaluation.summary["auto"]["target_98"]["chosen"]


def test_fit_operating_point_by_target_and_budget() -> None:
    from ladder.fit import fit_operating_point

    train = noisy_log(200, 10)
    policy, point = fit_operating_point(train, target=0.9, n_lambdas=4, max_stages=2)
    assert point.mode == "quality" and point.relative and point.level == 0.9
    assert point.fallback or point.p_value <= 0.1
    # the policy returned is the certified one: its held-out outcome is the point's
    assert policy.held_out_.mean_quality == pytest.approx(point.quality)
    assert policy.held_out_.mean_cost == pytest.approx(point.cost)
    cheap, tight = fit_operating_point(train, budget=1.5, n_lambdas=4, max_stages=2)
    assert tight.mode == "budget" and (tight.fallback or tight.cost <= 1.5 + 1e-9)
    assert cheap.held_out_.mean_cost == pytest.approx(tight.cost)
    with pytest.raises(ValueError, match="exactly one"):
        fit_operating_point(train, target=0.9, budget=1.0)
    with pytest.raises(ValueError, match="budget"):
        fit_operating_point(train, budget=float("nan"))


def test_stability_refits_on_subsamples_of_train() -> None:
    from ladder.report import stability_section

    train, test = noisy_log(100, 11), noisy_log(100, 12)
    evaluation = evaluate(train, test, families=("fixed", "threshold"), n_lambdas=3,
                          max_stages=2, n_resamples=0, n_refits=2)
    result = evaluation.summary["threshold"]["stability"]
    assert result["refits"] == 2 and result["subsample"] == 0.8
    assert 0 <= result["reached_98"] <= 2 and 0 <= result["target_98_met"] <= 2
    assert evaluation.summary["fixed"]["stability"]["target_98_met"] is None
    # a single model always reaches its own quality: cost@98% of the fixed family exists
    assert evaluation.summary["fixed"]["stability"]["reached_98"] == 2
    assert "## Stability" in "\n".join(stability_section(evaluation))


def test_parallel_sweep_equals_sequential() -> None:
    # workers get a copy of the fitted predictors: their out-of-fold scores must be the ones
    # used, exactly as in this process
    train, test = noisy_log(120, 13), noisy_log(80, 14)
    kwargs = {"families": ("fixed", "threshold", "dp", "auto"), "n_lambdas": 3,
              "max_stages": 2, "n_resamples": 0}
    one, two = evaluate(train, test, n_jobs=1, **kwargs), evaluate(train, test, n_jobs=2,
                                                                      **kwargs)
    for a, b in zip(one.points, two.points, strict=True):
        assert (a.family, a.lam, a.chain, a.choice) == (b.family, b.lam, b.chain, b.choice)
        assert (a.cost, a.quality, a.train_quality) == (b.cost, b.quality, b.train_quality)
