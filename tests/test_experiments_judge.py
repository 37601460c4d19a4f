"""The judge experiment on the Zellinger MMLU log: the label-free reference and its labels
checked against the answers, the relabelled log (test labels untouched), the judge's
label error computed independently, a reduced quality-target run, and the section the
experiment renders from results."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ladder.experiments.judge_labels as judge_labels
from ladder.experiments.base import FAILS, HOLDS, REGISTRY, UNSETTLED, experiment
from ladder.experiments.claims import CLAIMS
from ladder.experiments.data import DataDir
from ladder.experiments.judge import BENCHMARKS, FAMILIES, JUDGE_SHARES, TARGET_UNIT, Judge
from ladder.experiments.judge_labels import (
    ALONE,
    HUMAN_SHARES,
    judged_split,
    label_errors,
    reference_labels,
    reference_model,
    relabel,
    target_runs,
)
from ladder.judge.label import sampled_queries

LETTERS = {"A", "B", "C", "D"}
LABELLINGS = ("judge", *(f"{s:.0%}" for s in HUMAN_SHARES), ALONE)


@pytest.fixture(scope="module")
def mmlu(shared_data: Path):
    """MMLU's rows of the log (as the experiment reads them), its split, the reference,
    and the reference judge's label of every row."""
    data = DataDir(shared_data)
    log = data.log("zellinger")
    df = log[log["benchmark"] == "mmlu"].reset_index(drop=True)
    train, test, _ = data.split("zellinger", "mmlu")
    reference = reference_model(train)
    return df, train, test, reference, reference_labels(df, reference)


@pytest.fixture(scope="module")
def judged(mmlu):
    df, train, test, _, labels = mmlu
    return judged_split(df, labels, train, test)


def test_the_experiment_is_registered_and_runs_on_the_judged_benchmarks(shared_data,
                                                                        tmp_path):
    assert REGISTRY["judge"] == "ladder.experiments.judge:Judge"
    assert isinstance(experiment("judge"), Judge)
    units = Judge().units(DataDir(shared_data))
    assert units[:6] == [*BENCHMARKS, *(b + TARGET_UNIT for b in BENCHMARKS)]
    assert not any(u.startswith("gsm8k") for u in units)  # free-form numbers: not judged
    assert Judge().units(DataDir(tmp_path)) == []  # no Zellinger log: nothing, embedded too


def test_the_reference_is_the_dearest_model_on_train(mmlu):
    df, train, _, reference, _ = mmlu
    rows = df[df["query_id"].isin(set(train.query_ids))]
    assert reference == rows.groupby("model")["cost"].mean().idxmax()
    # chosen without labels: scrambling them changes nothing
    scrambled = replace(train, quality=np.random.default_rng(0).permutation(train.quality))
    assert reference_model(scrambled) == reference


def test_reference_labels_are_agreement_with_the_references_answer(mmlu):
    df, _, _, reference, labels = mmlu
    assert labels.shape == (len(df),)
    own = (df["model"] == reference).to_numpy()
    assert (labels[own] == 1.0).all()
    theirs = df["query_id"].map(df[own].set_index("query_id")["answer"]).to_numpy()
    answers = df["answer"].to_numpy()
    letters = np.array([a in LETTERS and r in LETTERS for a, r in zip(answers, theirs,
                                                                      strict=True)])
    assert letters[~own].mean() > 0.9  # MMLU: almost every answer a bare letter
    same = letters & ~own & (answers == theirs)
    differ = letters & ~own & (answers != theirs)
    assert (labels[same] == 1.0).all() and (labels[differ] == 0.0).all()
    assert same.sum() > 1000 and differ.sum() > 1000
    # by hand: the first row of each kind
    i, j = np.flatnonzero(same)[0], np.flatnonzero(differ)[0]
    assert answers[i] == theirs[i] and labels[i] == 1.0
    assert answers[j] != theirs[j] and labels[j] == 0.0
    assert ((labels == 0.0) | (labels == 1.0) | np.isnan(labels)).all()


def test_relabel_judges_train_cells_only(mmlu):
    df, train, _, _, labels = mmlu
    rows = df["query_id"].isin(set(train.query_ids)).to_numpy()
    judged = df["query_id"].isin(set(list(train.query_ids)[:50])).to_numpy()
    out = relabel(df, labels, rows, judged)
    test_rows = ~rows
    assert np.array_equal(out["quality"][test_rows], df["quality"][test_rows], equal_nan=True)
    assert out["label_source"][test_rows].isna().all()
    assert out["judge_quality"][test_rows].isna().all()
    mine = rows & judged & ~np.isnan(labels)
    assert (out["label_source"][mine] == "reference").all()
    assert np.array_equal(out["quality"][mine], labels[mine])
    assert np.array_equal(out["judge_quality"][mine], labels[mine])
    unseen = rows & ~judged
    assert out["quality"][unseen].isna().all() and out["label_source"][unseen].isna().all()
    assert set(out["label_source"].dropna()) == {"reference"}


def test_judged_split_is_trains_queries_with_the_judges_labels(mmlu, judged):
    df, train, test, _, labels = mmlu
    assert np.array_equal(judged.query_ids, train.query_ids)
    assert list(judged.models) == list(train.models)
    known = ~np.isnan(judged.judge_quality)
    assert known.mean() > 0.95
    assert np.array_equal(judged.label_source == "reference", known)
    assert np.array_equal(judged.quality, judged.judge_quality, equal_nan=True)
    # cell by cell, the label of the row in the log
    by_cell = pd.Series(labels, index=pd.MultiIndex.from_frame(df[["query_id", "model"]]))
    for q in (0, 7, judged.n - 1):
        for m, model in enumerate(judged.models):
            expect = by_cell[(judged.query_ids[q], model)]
            got = judged.quality[q, m]
            assert (np.isnan(expect) and np.isnan(got)) or got == expect
    # a relabelling that moved a test label would be caught
    moved = replace(test, quality=1.0 - test.quality)
    with pytest.raises(AssertionError, match="test labels"):
        judged_split(df, labels, train, moved)


def test_a_judge_that_saw_a_share_labels_only_those_queries(mmlu):
    df, train, test, _, labels = mmlu
    partial = judged_split(df, labels, train, test, share=0.2, seed=0)
    assert np.array_equal(partial.query_ids, train.query_ids)
    seen = ~np.isnan(partial.judge_quality).all(axis=1)
    assert seen.sum() == pytest.approx(0.2 * train.n, abs=2)
    assert set(map(str, partial.query_ids[seen])) <= sampled_queries(train.query_ids, 0.2, 0)
    assert np.isnan(partial.quality[~seen]).all()
    assert (partial.label_source[~seen] == None).all()  # noqa: E711 (object array)
    full = judged_split(df, labels, train, test)
    assert np.array_equal(partial.quality[seen], full.quality[seen], equal_nan=True)
    assert not np.array_equal(
        judged_split(df, labels, train, test, share=0.2, seed=1).label_source == "reference",
        partial.label_source == "reference")


def test_label_errors_match_an_independent_count(mmlu, judged):
    _, train, _, reference, _ = mmlu
    errors = label_errors(judged, train)
    view, truth = judged.judge_quality, train.quality
    known = ~np.isnan(view)
    wrong = known & (view != truth)
    rate = wrong.sum() / known.sum()
    assert 0.03 < rate < 0.25, rate  # the top model is right on ~85% of MMLU
    e = errors["error"]
    assert e["point"] == pytest.approx(rate)
    assert e["low"] <= e["point"] <= e["high"] and e["high"] - e["low"] < 0.1
    up = (known & (view > truth)).sum() / known.sum()
    assert errors["false_positive"]["point"] == pytest.approx(up)
    assert errors["false_positive"]["point"] + errors["false_negative"]["point"] == \
        pytest.approx(rate)
    assert errors["unlabelled"]["point"] == pytest.approx((~known).mean())
    # the reference agrees with itself: its judge label is 1 and its error is its own
    r = list(train.models).index(reference)
    ref = errors["models"][reference]
    assert ref["judged"] == 1.0
    assert ref["error"]["point"] == pytest.approx(1.0 - truth[known[:, r], r].mean())
    assert ref["true"] == pytest.approx(truth[known[:, r], r].mean())
    assert set(errors["models"]) == set(train.models)


@pytest.fixture(scope="module")
def reduced_runs(mmlu, judged):
    """`target_runs` on 100 train queries and three models, 2 resamples of 3 λ values."""
    _, train, test, reference, _ = mmlu
    models = [train.models[0], train.models[3], reference]
    rows = np.arange(100)
    # no query texts: no router variants to fit, which would take most of the time
    small = replace(judged.rows(rows).select_models(models), prompts=None)
    truth = replace(train.rows(rows).select_models(models), prompts=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(judge_labels, "N_SUBSAMPLES", 2)
        mp.setattr(judge_labels, "TARGET_LAMBDAS", 3)
        runs = target_runs(small, truth, test.select_models(models))
    return models, runs


def test_target_runs_on_a_reduced_input(reduced_runs):
    models, runs = reduced_runs
    assert len(runs) == 2
    n = round(judge_labels.SUBSAMPLE * 100)
    for run in runs:
        assert tuple(run) == LABELLINGS
        assert run["judge"]["human_labels"] == 0 and "ppi" not in run["judge"]["method"]
        for share in HUMAN_SHARES:
            r = run[f"{share:.0%}"]
            assert r["human_labels"] == round(share * n)
            assert r["method"].endswith("+ppi")
        assert run[ALONE]["human_labels"] == run["10%"]["human_labels"]
        assert run[ALONE]["method"] == "ppi-paired"
        for r in run.values():
            assert 0.0 <= r["quality"] <= 1.0 and 0.0 <= r["train_quality"] <= 1.0
            assert r["met"] == (r["margin"] >= 0)
            assert r["cost_share"] > 0 and set(r["chain"]) <= set(models)


def test_the_target_table_renders_from_real_runs(reduced_runs, tmp_path, monkeypatch):
    import ladder.experiments.judge as judge

    _, runs = reduced_runs
    monkeypatch.setattr(judge, "N_SUBSAMPLES", len(runs))
    section = Judge().render({"mmlu" + TARGET_UNIT: {"n_train": 100, "n_test": 1531,
                                                     "split": "log", "runs": runs}},
                             tmp_path, tmp_path / "results.md")
    met = sum(run["judge"]["met"] for run in runs)
    assert f"| mmlu | judge labels as the truth | {met}/2 |" in section.markdown
    assert "| mmlu | PPI alone, 10% human |" in section.markdown
    assert [f.claim for f in section.findings] == ["judge-target", "judge-target"]
    assert all(f.verdict == FAILS for f in section.findings)  # 2 resamples: fewer than 9 met


# --- the section, from results of the experiment's shape -------------------------------


def interval(point: float, low: float, high: float, **more) -> dict:
    return {"point": point, "low": low, "high": high, **more}


def fit_result(mmlu_errors: dict, reference: str, aiq: tuple[float, float, float]) -> dict:
    """A fit unit's results whose reference-labelled auto fit has Δ AIQ `aiq`."""
    families, comparisons = {}, []
    for family in FAMILIES:
        families[f"true {family}"] = {"aiq": interval(0.8, 0.78, 0.82),
                                      "cost_at_98": interval(0.3, 0.2, 0.4)}
        for name in JUDGE_SHARES:
            families[f"{name} {family}"] = {"aiq": interval(0.8, 0.78, 0.82),
                                            "cost_at_98": interval(0.3, 0.2, 0.4)}
            comparisons.append({"a": f"{name} {family}", "b": f"true {family}",
                                "aiq": interval(*aiq),
                                "cost_at_98": interval(0.01, -0.01, 0.03, share_both=0.9)})
    return {"n_train": 285, "n_test": 1531, "split": "log", "reference": reference,
            "long_answers": 0.0, "errors": mmlu_errors, "families": families,
            "comparisons": comparisons}


def target_result(met: int) -> dict:
    """A target unit's results: `met` of 10 resamples meet the target, every labelling."""
    runs = []
    for i in range(10):
        margin = 0.01 if i < met else -0.02
        runs.append({name: {"met": margin >= 0, "margin": margin, "quality": 0.85 + margin,
                            "cost_share": 0.6, "fallback": False,
                            "human_labels": 0 if name == "judge" else 24,
                            "chain": ["a", "b"], "train_quality": 0.86, "method": "binomial"}
                     for name in LABELLINGS})
    return {"n_train": 285, "n_test": 1531, "split": "log", "runs": runs}


@pytest.mark.parametrize(("aiq", "met", "fit_verdict", "target_verdict"), [
    ((0.001, -0.002, 0.004), 10, HOLDS, HOLDS),
    ((-0.02, -0.03, -0.01), 8, FAILS, FAILS),
    ((-0.002, -0.01, 0.003), 9, UNSETTLED, HOLDS),
])
def test_the_section_renders_its_tables_and_findings(mmlu, judged, tmp_path, aiq, met,
                                                     fit_verdict, target_verdict):
    _, train, _, reference, _ = mmlu
    errors = label_errors(judged, train)
    results = {"mmlu": fit_result(errors, reference, aiq),
               "mmlu" + TARGET_UNIT: target_result(met)}
    section = Judge().render(results, tmp_path, tmp_path / "results.md")
    text = section.markdown
    for header in ("| benchmark | reference | label error | judge 1, truth 0 |",
                   "| model | mmlu |",
                   "| benchmark | family | labels | AIQ [90% CI] | Δ AIQ |",
                   "| benchmark | labels | met | rate [90% CI] |"):
        assert header in text
    assert f"| mmlu | {reference} | {errors['error']['point']:.3f} [" in text
    assert f"| mmlu | judge labels as the truth | {met}/10 |" in text
    claims = [f.claim for f in section.findings]
    assert claims == ["judge-fit", "judge-target", "judge-target"]
    assert {f.claim for f in section.findings} <= {c.key for c in CLAIMS}
    fit, *targets = section.findings
    assert fit.verdict == fit_verdict and f"{aiq[0]:+.3f}" in fit.measured
    assert [f.verdict for f in targets] == [target_verdict] * 2
    assert f"mmlu {met}/10" in targets[0].measured


def test_the_section_without_results_says_so(tmp_path):
    section = Judge().render({}, tmp_path, tmp_path / "results.md")
    assert "No Zellinger log" in section.markdown and not section.findings
