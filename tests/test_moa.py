"""Pyramid MoA (theory.md §5): Eq. 5, the monotonicity maths, the vote and its features,
replay, save/load, the evaluate family, and the real logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ladder.evaluate.experiment import evaluate
from ladder.evaluate.moa_profile import monotonicity, performance_profile, reference_points
from ladder.policies.moa import (
    MoAUnavailable,
    PyramidMoA,
    default_layers,
    escalation_barriers,
    fit_sweep,
    layer_features,
    layer_votes,
    majority_vote,
)
from ladder.policies.persist import load_policy, save_policy
from ladder.runlog import QueryTable, RunLogError, load_runlog
from ladder.runlog.table import PADDING

CHEAP = ("a", "b", "c")


def test_eq5_barriers_hand_checked() -> None:
    # λ = 2 per $, oracle 0.1 $ → cost barrier 0.2; P_oracle 0.8 → imperfection barrier 0.2
    b = escalation_barriers(2.0, 0.1, 0.8)
    assert b.cost == pytest.approx(0.2) and b.imperfection == pytest.approx(0.2)
    assert b.total == pytest.approx(0.4)
    # the rule is E[U_esc] > E[U_stop]: P_oracle − λ·c > 1 − P_fail
    for p_fail in (0.39, 0.41):
        escalate_wins = 0.8 - 2.0 * 0.1 > 1 - p_fail  # noqa: SIM300
        assert (p_fail > b.total) == escalate_wins
    assert escalation_barriers(0.0, 5.0, 1.0).total == 0.0  # free, perfect oracle: always
    with pytest.raises(ValueError):
        escalation_barriers(-1.0, 0.1, 0.8)


def test_monotonicity_hand_computed() -> None:
    escalated = np.array([True, True, False, True, False])
    l1 = np.array([0, 1, 1, 0, 1.0])
    l2 = np.array([1, 1, 0, 1, 0.0])
    row = monotonicity(escalated, l1, l2)
    # R = {0, 1, 3}: p_R = 3/5, α_L1(R) = 1/3, α_L2(R) = 1, ΔAcc = 0.6 · 2/3 = 0.4
    assert row["p_R"] == pytest.approx(0.6)
    assert row["alpha_L1_R"] == pytest.approx(1 / 3) and row["alpha_L2_R"] == pytest.approx(1)
    assert row["gap"] == pytest.approx(2 / 3) and row["delta_acc"] == pytest.approx(0.4)
    assert row["satisfied"] is True
    # Theorem 1's identity: Acc_MoA − Acc_L1 = ΔAcc (1.0 − 0.6)
    assert np.where(escalated, l2, l1).mean() - l1.mean() == pytest.approx(row["delta_acc"])
    worse = monotonicity(np.array([True, False]), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert worse["gap"] == pytest.approx(-1.0) and worse["satisfied"] is False
    assert worse["delta_acc"] == pytest.approx(-0.5)
    none = monotonicity(np.zeros(3, bool), l1[:3], l2[:3])
    assert none["p_R"] == 0.0 and none["delta_acc"] == 0.0 and none["satisfied"] is None


def _row(q: str, model: str, answer: str | None, quality: float, cost: float, **extra) -> dict:
    return {"query_id": q, "model": model, "answer": answer, "quality": quality, "cost": cost,
            **extra}


def tiny_log() -> QueryTable:
    """Two queries, three cheap models and an oracle; answers chosen by hand."""
    rows = []
    for q, answers, correct in (("q0", ("x", "x", "y"), "x"), ("q1", ("x", "y", None), "z")):
        for model, answer, cost in zip(CHEAP, answers, (1.0, 1.0, 2.0), strict=True):
            rows.append(_row(q, model, answer, float(answer == correct), cost,
                             tokens_out=10.0 * cost, confidence=0.5 + 0.1 * cost))
        rows.append(_row(q, "o", correct, 1.0, 10.0, tokens_out=5.0, confidence=0.9))
    return QueryTable.from_runlog(pd.DataFrame(rows))


def test_vote_and_features_on_a_tiny_log() -> None:
    table = tiny_log()
    members = [table.index(m) for m in CHEAP]
    votes = layer_votes(table, members)
    position, support = majority_vote(votes, table.answers[:, members])
    assert support.tolist() == [2, 1]  # q0: x, x, y; q1: x, y, missing → x (first) wins
    assert [CHEAP[p] for p in position] == ["a", "a"]
    X, names = layer_features(table, members)
    f = dict(zip(names, X[0], strict=True))
    assert f["agreement"] == pytest.approx(2 / 3) and f["distinct_answers"] == 2
    assert f["answer_entropy"] == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))
    assert f["tokens_out_mean"] == pytest.approx(40 / 3)
    assert f["tokens_out_var"] == pytest.approx(np.var([10, 10, 20]))
    assert f["confidence_min"] == pytest.approx(0.6) and f["c:agrees"] == 0.0
    assert np.isnan(f["logprob_mean"])  # not in the log: NaN, not an error
    g = dict(zip(names, X[1], strict=True))
    assert g["agreement"] == pytest.approx(1 / 3) and g["failed_share"] == pytest.approx(1 / 3)
    assert g["distinct_answers"] == 2 and np.isnan(g["c:agrees"])


def test_samples_vote_within_a_model() -> None:
    rows = [_row("q0", "s", "x", 1.0, 1.0, samples=["x", "y", "y", None]),
            _row("q0", "t", "y", 0.0, 1.0, samples=["y"]),
            _row("q0", "o", "x", 1.0, 9.0)]
    table = QueryTable.from_runlog(pd.DataFrame(rows), models=["s", "t", "o"])
    votes = layer_votes(table, [0, 1])
    assert (votes == PADDING).sum() == 3 and (votes == -1).sum() == 1  # t: 1 sample of 4 slots
    position, support = majority_vote(votes, table.answers[:, [0, 1]])
    assert support[0] == 3 and position[0] == 1  # y: 2 of s's samples + t's
    X, names = layer_features(table, [0, 1])
    f = dict(zip(names, X[0], strict=True))
    assert f["agreement"] == pytest.approx(3 / 5) and f["failed_share"] == pytest.approx(1 / 5)


def pyramid_log(n: int = 400, seed: int = 0) -> QueryTable:
    """Three cheap models whose agreement tracks whether their majority is right; an oracle
    right 90% of the time."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < 0.6
    rows = []
    for i in range(n):
        for model, skill, cost in zip(CHEAP, (0.55, 0.65, 0.7), (1.0, 1.5, 2.0), strict=True):
            right = rng.random() < (0.95 if easy[i] else skill - 0.3)
            answer = "gold" if right else f"w{rng.integers(3)}"
            confidence = float(np.clip(0.3 + 0.5 * right + rng.normal(0, 0.2), 0, 1))
            rows.append(_row(f"q{i}", model, answer, float(right), cost, confidence=confidence))
        right = rng.random() < 0.9
        rows.append(_row(f"q{i}", "o", "gold" if right else "w9", float(right), 20.0))
    df = pd.DataFrame(rows)
    df["split"] = np.where(df["query_id"].str[1:].astype(int) < n // 2, "train", "test")
    return QueryTable.from_runlog(df)


@pytest.fixture(scope="module")
def halves() -> tuple[QueryTable, QueryTable]:
    table = pyramid_log()
    return table.rows(table.split == "train"), table.rows(table.split == "test")


@pytest.fixture(scope="module")
def fitted(halves) -> PyramidMoA:
    return PyramidMoA(lam=0.01).fit(halves[0])


def test_default_layers_and_fit(halves, fitted: PyramidMoA) -> None:
    oracle, candidates = default_layers(halves[0])
    assert oracle == "o" and candidates == [("a", "b"), ("a", "b", "c")]
    assert fitted.oracle_ == "o" and fitted.layer1_ in candidates
    assert fitted.p_oracle_ == pytest.approx(halves[0].quality[:, 3].mean())
    assert fitted.cost_barrier_ == pytest.approx(0.01 * 20.0)
    assert fitted.barrier_ == pytest.approx(0.2 + 1 - fitted.p_oracle_)
    best = int(np.argmax(fitted.candidate_objectives_))
    assert fitted.layer1_ == fitted.candidates_[best]


def test_replay_matches_a_direct_computation(halves, fitted: PyramidMoA) -> None:
    _, test = halves
    out = fitted.replay(test)
    escalate = fitted.p_fail(test) > fitted.barrier_
    assert 0 < escalate.mean() < 1  # the rule is exercised both ways
    members = [test.index(m) for m in fitted.layer1_]
    votes = test.answers[:, members]
    rows = np.arange(test.n)
    # majority by hand: the first member whose answer has the most copies among members
    counts = (votes[:, :, None] == votes[:, None, :]).sum(axis=2) * (votes >= 0)
    l1 = np.asarray(members)[counts.argmax(axis=1)]
    expected = np.where(escalate, test.index("o"), l1)
    assert np.array_equal(out.chosen, expected)
    assert np.allclose(out.quality, test.quality[rows, expected])
    assert np.allclose(out.cost, test.cost[:, members].sum(axis=1) + escalate * 20.0)
    assert np.array_equal(out.chosen == test.index("o"), fitted.escalate(test))


def test_p_fail_is_informative_and_the_profile_is_consistent(halves, fitted) -> None:
    _, test = halves
    wrong = fitted.replay(test).quality < 0.5  # at barrier > 0 most stay in layer 1
    p = fitted.p_fail(test)
    assert p[wrong].mean() > p[~wrong].mean() + 0.2
    profile = performance_profile(fitted, test, thresholds=(0.0, 0.4, 1.0))
    ref = reference_points(fitted, test)
    assert profile[0]["accuracy"] == pytest.approx(ref["oracle_accuracy"])  # all escalated
    assert profile[-1]["accuracy"] == pytest.approx(ref["layer1_accuracy"])  # none
    assert profile[-1]["savings"] == pytest.approx(1 - ref["layer1_cost"] / ref["oracle_cost"])
    for row in profile:  # Theorem 1 on the replayed accuracies
        assert row["accuracy"] - ref["layer1_accuracy"] == pytest.approx(row["delta_acc"])


def test_sweep_shares_the_fit_and_lambda_only_moves_the_barrier(halves, fitted) -> None:
    train, test = halves
    sweep = fit_sweep(train, [0.0, 0.01, 1.0])
    assert [p.lam for p in sweep] == [0.0, 0.01, 1.0]
    assert sweep[1].barrier_ == pytest.approx(fitted.barrier_)
    assert np.allclose(sweep[1].p_fail(test), fitted.p_fail(test))
    assert sweep[2].replay(test).mean_cost < sweep[0].replay(test).mean_cost
    direct = fitted.at(threshold=0.3)
    assert direct.barrier_ == 0.3 and np.array_equal(direct.escalate(test),
                                                     fitted.p_fail(test) > 0.3)


def test_save_and_load_round_trip(halves, fitted: PyramidMoA, tmp_path: Path) -> None:
    _, test = halves
    loaded = load_policy(save_policy(fitted, tmp_path / "moa.json"))
    assert isinstance(loaded, PyramidMoA) and loaded.layer1_ == fitted.layer1_
    assert loaded.barrier_ == fitted.barrier_ and loaded.oracle_ == "o"
    assert np.array_equal(loaded.p_fail(test), fitted.p_fail(test))
    a, b = loaded.replay(test), fitted.replay(test)
    assert np.array_equal(a.chosen, b.chosen) and np.array_equal(a.cost, b.cost)


def test_user_mistakes_give_clear_errors(halves) -> None:
    train, _ = halves
    with pytest.raises(ValueError, match="threshold"):
        PyramidMoA(threshold=1.5).fit(train)
    with pytest.raises(RunLogError, match="nope"):
        PyramidMoA(layer1=["a", "nope"]).fit(train)
    with pytest.raises(MoAUnavailable, match="two votes"):
        PyramidMoA(layer1=["a"]).fit(train)
    with pytest.raises(MoAUnavailable, match="no cheap layer"):
        default_layers(train.select_models(["c", "o"]), oracle="c")


def test_evaluate_family_and_skip_note(halves) -> None:
    train, test = halves
    ev = evaluate(train, test, families=("fixed", "moa"), n_lambdas=3, n_resamples=0)
    points = ev.family_points("moa")
    assert len(points) == 4 and ev.summary["moa"]["aiq"] is not None and not ev.notes
    assert points[0].chain[-1] == "o"
    blind = train.select_models(["a", "o"])  # one cheap model, one answer: no layer
    skipped = evaluate(blind, test.select_models(["a", "o"]), families=("fixed", "moa"),
                       n_lambdas=2, n_resamples=0)
    assert "moa" not in skipped.summary and skipped.notes[0].startswith("moa skipped")


def test_mot_samples_to_gpt4(shared_data: Path) -> None:
    table = QueryTable.from_runlog(load_runlog(shared_data / "mot-cascade-date", "mot"))
    order = np.random.default_rng(0).permutation(table.n)
    train, test = table.rows(np.sort(order[:185])), table.rows(np.sort(order[185:]))
    policy = PyramidMoA(threshold=0.4, layer1=["llama-2-13b", "gpt-3.5-turbo"]).fit(train)
    assert policy.oracle_ == "gpt-4"  # the most accurate on train
    votes = layer_votes(test, [test.index(m) for m in policy.layer1_])
    assert votes.shape[1] == 40 and (votes != PADDING).sum(axis=1).min() >= 2
    row = performance_profile(policy, test, thresholds=(0.4,))[0]
    assert 0 < row["p_R"] < 1 and row["savings"] > 0


def test_zellinger_small_models_to_405b(shared_data: Path) -> None:
    table = QueryTable.from_runlog(load_runlog(shared_data / "zellinger-cascades"),
                                   benchmark="mmlu")
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    layer = ["llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "gpt-4o-mini"]
    policy = PyramidMoA(lam=0.0, layer1=layer, oracle="llama3.1-405b").fit(train)
    assert policy.imperfection_barrier_ == pytest.approx(1 - 0.814, abs=1e-3)
    out = policy.replay(test)
    assert out.mean_cost < test.cost[:, test.index("llama3.1-405b")].mean() * 1.2
    assert out.mean_quality > 0.75
