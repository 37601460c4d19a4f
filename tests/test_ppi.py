"""Prediction-powered inference: the estimate is unbiased where the judge is not, its λ
tracks how well the judge follows the truth, its test keeps its level; whose labels a
table holds; operating points that an optimistic judge would break, kept by the audit;
and `fit_operating_point` / `ladder fit` on a real log relabelled by a judge."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ladder.cli import app
from ladder.policies.operating import Candidates, choose_by_quality
from ladder.policies.ppi import (
    HumanAudit,
    human_audit,
    human_rows,
    judge_labelled,
    judge_view,
    ppi_mean,
    ppi_p_value,
)
from ladder.runlog import QueryTable, load_runlog, validate_runlog, write_runlog

runner = CliRunner()


def optimistic(truth: np.ndarray, rng: np.random.Generator, up: float,
               down: float = 0.0) -> np.ndarray:
    """A judge's 0/1 view of `truth`: a 0 read as 1 with probability `up`, a 1 as 0 with
    probability `down`."""
    u = rng.random(truth.shape)
    return np.where(truth == 1, (u >= down).astype(float), (u < up).astype(float))


def split_at(f: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator):
    """(judge's view on the unlabelled, on the labelled, truth on the labelled) for a
    random labelled subset of n."""
    labelled = np.zeros(f.size, dtype=bool)
    labelled[rng.choice(f.size, n, replace=False)] = True
    return f[~labelled], f[labelled], y[labelled]


# --- ppi_mean -----------------------------------------------------------------------------


def test_ppi_mean_is_unbiased_where_the_judge_is_not():
    rng = np.random.default_rng(0)
    p, big, n, sims = 0.7, 1000, 60, 400
    thetas, naive = [], []
    for _ in range(sims):
        y = (rng.random(big) < p).astype(float)
        f = optimistic(y, rng, up=0.4, down=0.05)
        thetas.append(ppi_mean(*split_at(f, y, n, rng))[0])
        naive.append(f.mean())
    thetas, naive = np.array(thetas), np.array(naive)
    se = thetas.std(ddof=1) / np.sqrt(sims)
    assert abs(thetas.mean() - p) < 4 * se, (thetas.mean(), se)
    # the judge's own mean is off by 0.3·0.4 − 0.7·0.05 = 0.085: many of these errors
    assert naive.mean() - p == pytest.approx(0.085, abs=0.01)
    assert abs(naive.mean() - p) > 20 * se


def test_lambda_follows_how_well_the_judge_tracks_the_truth():
    rng = np.random.default_rng(1)
    y = (rng.random(2100) < 0.6).astype(float)
    n, big = 100, 2000
    labelled, unlabelled = y[:n], y[n:]
    # the truth itself: λ = 1 / (1 + n/N) up to sampling noise, θ̂ exact
    theta, se, lam = ppi_mean(unlabelled, labelled, labelled)
    assert lam > 0.9
    assert theta == pytest.approx(lam * unlabelled.mean() + (1 - lam) * labelled.mean())
    # no information: a constant judge, or one that says the opposite, gets λ = 0 and
    # the estimate is the classical one from the labelled queries alone
    classical = labelled.std(ddof=1) / np.sqrt(n)
    for f_u, f in ((np.ones(big), np.ones(n)), (1 - unlabelled, 1 - labelled)):
        theta, se, lam = ppi_mean(f_u, f, labelled)
        assert lam == 0.0
        assert theta == pytest.approx(labelled.mean())
        assert se == pytest.approx(classical)
    # independent noise: λ near 0 (only chance covariance)
    lams = [ppi_mean(rng.random(big), rng.random(n), labelled)[2] for _ in range(50)]
    assert np.mean(lams) < 0.1 and max(lams) < 0.4


def test_a_good_judge_shrinks_the_standard_error():
    rng = np.random.default_rng(2)
    ratios = []
    for _ in range(20):
        y = (rng.random(2100) < 0.7).astype(float)
        f = optimistic(y, rng, up=0.1, down=0.05)
        f_u, f_l, y_l = split_at(f, y, 100, rng)
        _, se, lam = ppi_mean(f_u, f_l, y_l)
        classical = y_l.std(ddof=1) / np.sqrt(y_l.size)
        assert 0.5 < lam <= 1.0
        ratios.append(se / classical)
    assert max(ratios) < 0.8, ratios


def test_ppi_mean_needs_two_labelled_queries_with_a_proxy_each():
    with pytest.raises(ValueError, match="at least 2"):
        ppi_mean([0.0, 1.0, 1.0], [1.0], [1.0])
    with pytest.raises(ValueError):
        ppi_mean([0.0, 1.0], [], [])
    with pytest.raises(ValueError):
        ppi_mean([0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0])  # a proxy per labelled query
    theta, se, lam = ppi_mean([1.0], [0.0, 1.0], [0.0, 1.0])  # one unlabelled: λ = 0
    assert (theta, lam) == (0.5, 0.0) and se > 0


# --- ppi_p_value --------------------------------------------------------------------------


def test_ppi_p_value_keeps_its_level_and_has_power():
    rng = np.random.default_rng(3)
    n, big, level, sims = 200, 2000, 0.8, 1000

    def rejection_rate(p: float) -> float:
        hits = 0
        for _ in range(sims):
            y = (rng.random(big + n) < p).astype(float)
            f = optimistic(y, rng, up=0.5, down=0.02)  # kind: the judge says ~0.88
            hits += ppi_p_value(*split_at(f, y, n, rng), level) <= 0.1
        return hits / sims

    assert rejection_rate(0.78) <= 0.16  # H holds: E[y] < level
    assert rejection_rate(0.88) >= 0.8  # well above: rejected


def test_ppi_p_value_with_no_spread_is_zero_or_one():
    ones = np.ones(10)
    assert ppi_p_value(ones, ones[:3], ones[:3], 0.9) == 0.0
    zeros = np.zeros(10)
    assert ppi_p_value(zeros, zeros[:3], zeros[:3], 0.1) == 1.0


# --- whose labels a table holds -----------------------------------------------------------

NAN = np.nan
# query: (model a's cell, model b's cell), each (quality, label_source, judge_quality)
CELLS = {
    "q0": ((1.0, "human", 0.0), (0.0, "human", 1.0)),  # a person's, the judge's beside
    "q1": ((1.0, "reference", 1.0), (0.7, "judge", NAN)),  # the judge's only
    "q2": ((1.0, "human", NAN), (1.0, "human", NAN)),  # a person's, no judge beside
    "q3": ((0.0, "human", 1.0), (NAN, None, NAN)),  # b unlabelled
    "q4": ((0.0, None, 1.0), (1.0, None, 1.0)),  # no source named: a person's
}


def cells_table(cells: dict = CELLS, *, sources: bool = True) -> QueryTable:
    rows = [{"query_id": q, "model": m, "quality": quality, "cost": cost,
             "label_source": source, "judge_quality": judged}
            for q, pair in cells.items()
            for m, cost, (quality, source, judged) in zip("ab", (1.0, 10.0), pair, strict=True)]
    df = pd.DataFrame(rows)
    if not sources:
        df = df.drop(columns="label_source")
    table = QueryTable.from_runlog(validate_runlog(df))
    assert list(table.models) == ["a", "b"]
    return table


def at(table: QueryTable, *queries: str) -> np.ndarray:
    where = {str(q): i for i, q in enumerate(table.query_ids)}
    return np.array([where[q] for q in queries])


def test_the_table_reads_label_sources_and_the_judges_labels():
    table = cells_table()
    i = at(table, "q1", "q3")
    assert list(table.label_source[i[0]]) == ["reference", "judge"]
    assert list(table.label_source[i[1]]) == ["human", None]
    assert table.judge_quality[i[0], 0] == 1.0 and np.isnan(table.judge_quality[i[0], 1])
    picked = table.rows(i).select_models(["b"])
    assert picked.label_source.shape == (2, 1) and picked.label_source[0, 0] == "judge"


def test_human_rows_are_queries_a_person_labelled_everywhere_with_the_judge_beside():
    table = cells_table()
    assert set(table.query_ids[human_rows(table)]) == {"q0", "q4"}
    assert judge_labelled(table)
    # no judge labels: every human-labelled query still lacks the judge's view
    plain = cells_table({q: tuple((x, s, NAN) for x, s, _ in pair)
                         for q, pair in CELLS.items() if q != "q1"})
    assert not human_rows(plain).any() and not judge_labelled(plain)
    # no source column: every label a person's
    unnamed = cells_table(sources=False)
    assert unnamed.label_source is None and not judge_labelled(unnamed)
    assert set(unnamed.query_ids[human_rows(unnamed)]) == {"q0", "q1", "q4"}


def test_the_run_log_refuses_a_source_on_an_unlabelled_cell():
    bad = {"q0": ((1.0, "human", NAN), (NAN, "reference", 1.0))}
    with pytest.raises(ValueError, match="label_source"):
        cells_table(bad)
    with pytest.raises(ValueError, match="label_source"):
        cells_table({"q0": ((1.0, "oracle", NAN), (1.0, "human", NAN))})


def test_judge_view_never_shows_a_persons_label():
    table = cells_table()
    predicted = np.full((table.n, 2), 0.5)
    view = judge_view(table, predicted)
    expect = {"q0": [0.0, 1.0], "q1": [1.0, 0.7], "q2": [0.5, 0.5], "q3": [1.0, 0.5],
              "q4": [1.0, 1.0]}
    for q, row in expect.items():
        assert list(view[at(table, q)[0]]) == row, q


def test_human_audit_lines_up_the_candidates_on_both_views():
    table = cells_table()
    predicted = np.full((table.n, 2), 0.5)
    chosen = [np.zeros(table.n, dtype=np.intp), np.ones(table.n, dtype=np.intp)]
    audit = human_audit(table, chosen, predicted)
    assert audit is not None and audit.widen and audit.n == 2
    assert set(table.query_ids[audit.rows]) == {"q0", "q4"}
    view = judge_view(table, predicted)
    assert np.array_equal(audit.proxy, view)
    assert np.array_equal(audit.truth, table.quality[audit.rows])
    assert np.array_equal(audit.reference_proxy, view)
    # fewer than two human rows, or no judge's label at all: nothing to audit
    one = cells_table({q: v for q, v in CELLS.items() if q != "q4"})
    assert human_audit(one, [c[:one.n] for c in chosen], predicted[:one.n]) is None
    unnamed = cells_table(sources=False)
    assert human_audit(unnamed, chosen, predicted) is None


# --- an operating point an optimistic judge would break -----------------------------------

TRUE = (0.70, 0.85, 0.95)  # true quality of three candidates, cheapest first


def judged_candidates(seed: int, n_people: int = 200, big: int = 2000):
    """Candidates whose labels are an optimistic judge's (a wrong answer passed as right
    half the time) except on a random `n_people` queries a person labelled, and the audit."""
    rng = np.random.default_rng(seed)
    truth = np.column_stack([(rng.random(big) < p).astype(float) for p in TRUE])
    view = optimistic(truth, rng, up=0.5)
    rows = np.sort(rng.choice(big, n_people, replace=False))
    quality = view.copy()
    quality[rows] = truth[rows]
    cost = np.tile([1.0, 2.0, 3.0], (big, 1))
    audit = HumanAudit(rows, view, truth[rows], view, truth[rows])
    return Candidates(quality, cost), audit, truth


@pytest.mark.parametrize("seed", range(3))
def test_the_audit_keeps_the_promise_an_optimistic_judge_breaks(seed):
    cands, audit, truth = judged_candidates(seed)
    target = 0.9
    trusting = choose_by_quality(cands, target, 0.1, mixtures=None)
    assert not trusting.fallback and trusting.index == 1  # the judge sees ~0.92
    assert truth[:, trusting.index].mean() < target  # truly ~0.85: the promise broken
    assert trusting.human_labels == 0 and "ppi" not in "".join(trusting.methods)

    point = choose_by_quality(cands, target, 0.1, mixtures=None, audit=audit)
    assert not point.fallback and point.index == 2
    assert truth[:, point.index].mean() >= target
    assert point.human_labels == audit.n == 200
    assert all(m.endswith("+ppi") for m in point.methods)
    assert point.methods[0] == "binomial+ppi"  # a 0/1 column: exact test, then PPI
    assert point.ladder == trusting.ladder
    assert all(w >= p for w, p in zip(point.p_values, trusting.p_values, strict=True))

    alone = choose_by_quality(cands, target, 0.1, mixtures=None,
                              audit=replace(audit, widen=False))
    assert set(alone.methods) == {"ppi"} and alone.index == 2
    unlabelled = np.delete(audit.proxy, audit.rows, axis=0)
    for (a, _, _), p in zip(alone.ladder, alone.p_values, strict=True):
        assert p == pytest.approx(ppi_p_value(unlabelled[:, a], audit.proxy[audit.rows, a],
                                              audit.truth[:, a], target))
    # widening is the larger of the two p-values
    assert point.p_values == pytest.approx(
        tuple(max(a, b) for a, b in zip(alone.p_values, trusting.p_values, strict=True)))


def test_the_audit_of_a_relative_target_tests_the_paired_difference():
    cands, audit, _ = judged_candidates(0)
    reference = cands.quality[:, 2]
    point = choose_by_quality(cands, 0.9, 0.1, mixtures=None, reference=reference,
                              audit=audit)
    assert point.relative and all(m == "wsr-paired+ppi" for m in point.methods)
    alone = choose_by_quality(cands, 0.9, 0.1, mixtures=None, reference=reference,
                              audit=replace(audit, widen=False))
    assert set(alone.methods) == {"ppi-paired"}
    assert point.human_labels == alone.human_labels == 200


# --- a real log, relabelled by a judge ----------------------------------------------------

MODELS = ["llama3.2-1b", "llama3.1-8b", "llama3.1-70b"]
N_QUERIES, N_HUMAN = 150, 30


@pytest.fixture(scope="module")
def judged_log(shared_data: Path) -> pd.DataFrame:
    """MMLU's first 150 train queries on three models, labelled by agreement with the
    dearest one's answer (label_source reference), but for 30 queries a person labelled
    as well (their true label kept, the judge's beside)."""
    df = load_runlog(shared_data / "zellinger-cascades", "zellinger")
    df = df[(df["benchmark"] == "mmlu") & (df["split"] == "train") & df["model"].isin(MODELS)]
    df = df[df["query_id"].isin(df["query_id"].unique()[:N_QUERIES])]
    df = df[["query_id", "model", "quality", "cost", "answer", "confidence", "split"]]
    df = df.reset_index(drop=True)
    top = df.groupby("model")["cost"].mean().idxmax()
    assert top == MODELS[-1]
    reference = df[df["model"] == top].set_index("query_id")["answer"]
    judged = (df["answer"].to_numpy() == df["query_id"].map(reference).to_numpy()).astype(float)
    queries = sorted(df["query_id"].unique())
    people = set(np.random.default_rng(0).choice(queries, N_HUMAN, replace=False))
    human = df["query_id"].isin(people).to_numpy()
    out = df.assign(quality=np.where(human, df["quality"], judged),
                    label_source=np.where(human, "human", "reference"),
                    judge_quality=judged)
    return validate_runlog(out)


@pytest.fixture
def serial_fit(monkeypatch):
    """The λ sweep in this process (starting worker processes would take longer than
    the small sweeps here)."""
    import ladder.fit

    monkeypatch.setattr(ladder.fit, "operating_candidates",
                        functools.partial(ladder.fit.operating_candidates, n_jobs=1))


def test_fit_operating_point_corrects_a_judge_with_a_persons_labels(judged_log, serial_fit):
    from ladder.fit import choose_operating_point, fit_operating_point, operating_candidates

    table = QueryTable.from_runlog(judged_log)
    assert judge_labelled(table) and human_rows(table).sum() == N_HUMAN
    policy, plain = fit_operating_point(table, target=0.9, n_lambdas=3, max_stages=2,
                                        correct=False)
    assert plain.human_labels == 0 and not any("ppi" in m for m in plain.methods)
    assert policy.held_out_.mean_quality == pytest.approx(plain.quality)

    candidates = operating_candidates(table, n_lambdas=3, max_stages=2)
    assert candidates.audit is not None and candidates.audit.n == N_HUMAN
    again = choose_operating_point(candidates, target=0.9, correct=False)[1]
    assert again.p_values == pytest.approx(plain.p_values)  # what fit_operating_point does
    policy, point = choose_operating_point(candidates, target=0.9)
    assert point.human_labels == N_HUMAN
    assert all(m.endswith("+ppi") for m in point.methods)
    assert policy.held_out_.mean_quality == pytest.approx(point.quality)
    assert point.ladder == plain.ladder
    # the correction only widens: the corrected point is never the cheaper one
    assert all(c >= p for c, p in zip(point.p_values, plain.p_values, strict=True))
    assert point.cost >= plain.cost - 1e-12
    # a budget is about costs, which no judge labels: no audit
    assert choose_operating_point(candidates, budget=1e-4)[1].human_labels == 0
    # the same candidates audited on labels that are all a person's: nothing to correct
    assert candidates.audited(QueryTable.from_runlog(
        judged_log.drop(columns=["label_source", "judge_quality"]))).audit is None


@pytest.fixture
def quick_fit(monkeypatch, serial_fit):
    """`ladder fit` with a three-λ sweep (the command has no option for it)."""
    import ladder.fit

    monkeypatch.setattr(ladder.fit, "fit_operating_point",
                        functools.partial(ladder.fit.fit_operating_point, n_lambdas=3))


def test_ladder_fit_says_when_the_labels_are_a_judges(judged_log, tmp_path, quick_fit):
    log = tmp_path / "judged.jsonl"
    write_runlog(judged_log, log)
    args = ["fit", str(log), "--target-quality", "0.9", "--max-stages", "2",
            "--models", f"{MODELS[0]},{MODELS[2]}"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "p.json")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "labels: partly a judge's, corrected by prediction-powered tests on " \
           f"{N_HUMAN} queries a person labelled too" in text

    # the judge's labels with no person's beside: the note says they were read as the truth
    bare = judged_log.assign(label_source="reference",
                             quality=judged_log["judge_quality"])
    write_runlog(validate_runlog(bare), log)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "q.json")])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "labels: partly a judge's, read as the truth" in text

    # true labels only: no note
    true = judged_log.drop(columns=["label_source", "judge_quality"])
    write_runlog(true, log)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "labels:" not in result.output
