"""The markdown report and its figures, on a small synthetic evaluation and on real data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ladder.evaluate.experiment import FAMILIES, Evaluation, evaluate
from ladder.report import format_summary_table, write_report
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = ("tiny", "mid", "big")


def synthetic_table(n: int = 200, seed: int = 0) -> QueryTable:
    """Three models of rising cost and accuracy; confidence informative about correctness."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    skill = np.array([0.35, 0.6, 0.85])
    correct = (rng.random((n, 3)) * 0.6 + 0.4 * difficulty[:, None] < skill).astype(float)
    confidence = np.clip(0.5 * correct + 0.5 * rng.random((n, 3)), 0, 1)
    cost = np.array([1e-5, 1e-4, 1e-3]) * rng.uniform(0.8, 1.2, (n, 3))
    signals = {name: np.full((n, 3), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = confidence
    split = np.where(np.arange(n) < n // 2, "train", "test").astype(object)
    return QueryTable(query_ids=np.arange(n).astype(str).astype(object), models=MODELS,
                      quality=correct, cost=cost, signals=signals, split=split)


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    table = synthetic_table()
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    return evaluate(train, test, split="synthetic halves", n_lambdas=4, max_stages=2)


def check_report(evaluation: Evaluation, directory: Path) -> str:
    path = write_report(evaluation, directory, title="test report")
    assert path == directory / "report.md"
    for name in ("report.md", "frontier.png", "stage_mix.png"):
        assert (directory / name).stat().st_size > 0, name
    for name in ("frontier.png", "stage_mix.png"):
        assert (directory / name).read_bytes()[:8] == PNG_SIGNATURE, name
    text = path.read_text(encoding="utf-8")
    for family in evaluation.summary:
        assert family in text
    for model in evaluation.models:
        assert model["name"] in text
    assert "](frontier.png)" in text and "](stage_mix.png)" in text
    return text


def test_write_report_synthetic(evaluation: Evaluation, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report"  # created, parents included
    text = check_report(evaluation, out)
    # the synthetic log has no answers for a layer 1 to vote on, and no prompts for a router:
    # moa, router and routed are left out, each with a note
    assert set(evaluation.summary) == set(FAMILIES) - {"moa", "router", "routed"}
    assert "moa skipped: the log has no 'answer' column" in text
    assert any(note.startswith("router") for note in evaluation.notes)
    assert f"test queries: {evaluation.n_test}" in text
    assert "synthetic halves" in text


def test_none_metrics_render_as_dash(evaluation: Evaluation, tmp_path: Path) -> None:
    summary = {f: dict(s) for f, s in evaluation.summary.items()}
    summary["dp"].update(cost_at_98=None, cost_at_100=None, gap_closure_98=None,
                         mix_at_98=None, apgr=float("nan"))
    ev = replace(evaluation, summary=summary)
    table = format_summary_table(ev)
    dp_row = next(line for line in table.splitlines() if line.startswith("| dp |"))
    cells = [c.strip() for c in dp_row.strip("|").split("|")]
    # family, AIQ, cost@98, cost@100, CPT50, CPT80, APGR, gap closure, max quality
    assert cells[2] == cells[3] == cells[6] == cells[7] == "—"
    assert "None" not in table and "nan" not in table
    assert dp_row in check_report(ev, tmp_path)


def test_summary_table_has_every_family(evaluation: Evaluation) -> None:
    lines = format_summary_table(evaluation).splitlines()
    assert lines[0].startswith("| family |")
    assert len(lines) == 2 + len(evaluation.summary)
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(evaluation.summary)


def test_report_without_cascade_families(evaluation: Evaluation, tmp_path: Path) -> None:
    keep = ("fixed", "oracle")  # as `evaluate(families=keep)` would give: no stage-mix bars
    ev = replace(evaluation, points=[p for p in evaluation.points if p.family in keep],
                 summary={f: evaluation.summary[f] for f in keep})
    text = check_report(ev, tmp_path)
    assert "### dp" not in text


@pytest.mark.skipif(not (DATA / "zellinger-cascades").exists(), reason="shared data absent")
def test_write_report_zellinger_mmlu(tmp_path: Path) -> None:
    from ladder.evaluate.split import split_table
    from ladder.runlog import load_runlog

    # Three of the nine models keep the fit to a few seconds; the report code is the same.
    models = ["llama3.2-1b", "gpt-4o-mini", "llama3.1-405b"]
    table = QueryTable.from_runlog(load_runlog(DATA / "zellinger-cascades"), models=models,
                                   benchmark="mmlu")
    train, test, how = split_table(table)
    ev = evaluate(train, test, split=how, n_lambdas=4, max_stages=2)
    text = check_report(ev, tmp_path)
    assert "llama3.1-405b (most accurate)" in text
