"""`ladder experiments`: verdicts from intervals, the claims table, the page rendered from
a summary, the CLI's errors, and the shared evaluation computed once per run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ladder.cli import app
from ladder.experiments.base import FAILS, HOLDS, NAMES, UNSETTLED, UNTESTABLE, Finding, Section
from ladder.experiments.claims import CLAIMS
from ladder.experiments.data import DataDir
from ladder.experiments.page import claims_table, render_page
from ladder.experiments.statistical import Statistical
from ladder.experiments.verdicts import at_least, ci, overall

runner = CliRunner()


def test_at_least_needs_the_whole_interval():
    assert at_least({"low": 6.3, "high": 7.0}, 6.2) == HOLDS
    assert at_least({"low": 5.0, "high": 6.1}, 6.2) == FAILS
    assert at_least({"low": 6.0, "high": 6.5}, 6.2) == UNSETTLED
    assert at_least({"low": None, "high": None}, 6.2) == UNSETTLED
    assert overall([HOLDS, HOLDS]) == HOLDS
    assert overall([HOLDS, UNSETTLED]) == UNSETTLED
    assert overall([HOLDS, FAILS, UNSETTLED]) == FAILS
    assert overall([]) == UNSETTLED
    assert ci({"point": 1.0, "low": None, "high": 2.0}, ".1f") == "1.0 [—, 2.0]"


def test_claims_table_lists_every_claim():
    sections = {"statistical": Section("", [Finding("speedup", "7× [6.5, 7.5]", HOLDS),
                                            Finding("speedup", "3× [2, 4]", FAILS)])}
    rows = claims_table(sections, {"statistical"})
    body = rows[2:]
    untestable = [c for c in CLAIMS if c.experiment is None]
    assert len(body) == len(CLAIMS) + 1  # speedup has two findings
    assert sum(UNTESTABLE in r for r in body) >= len(untestable)
    assert any("7× [6.5, 7.5]" in r and HOLDS in r for r in body)
    not_run = [r for r in body if "not run: `--experiments regret`" in r]
    assert len(not_run) == sum(c.experiment == "regret" for c in CLAIMS)
    # statistical ran: its claims without a finding say so instead of 'not run'
    assert any("found no dataset" in r for r in body)
    assert {c.experiment for c in CLAIMS} - {None} <= set(NAMES)


def _statistical_result(speedup: tuple[float, float, float], improves: int) -> dict:
    point, low, high = speedup
    return {"n_train": 300, "n_test": 1000, "split": "the log's", "markdown": "| t |",
            "notes": ["auto at λ = 1", "a note"], "level": 0.95, "rows": 10,
            "improves": improves, "costliest": "big", "latex": "x.tex", "chain": ["a", "b"],
            "kind": "threshold", "cost": 1e-4, "quality": 0.8,
            "speedup": {"point": point, "low": low, "high": high},
            "retained": {"point": 0.97, "low": 0.955, "high": 0.985},
            "first": {"point": 0.5, "low": 0.45, "high": 0.55}}


def test_statistical_findings_follow_the_intervals(tmp_path: Path):
    results = {"mmlu": _statistical_result((7.0, 6.5, 7.5), 10),
               "medmcqa": _statistical_result((6.9, 6.4, 7.4), 10)}
    findings = {f.claim: f for f in Statistical().render(results, tmp_path, tmp_path / "p.md")
                .findings}
    assert findings["speedup"].verdict == HOLDS
    assert findings["quality"].verdict == HOLDS
    assert findings["cost-84"].verdict == HOLDS  # 6.4× ≥ 1 / (1 − 0.842) = 6.33×
    assert findings["significance"].verdict == HOLDS
    assert findings["first-stage"].verdict == FAILS  # 0.662 outside [0.45, 0.55]
    results["medmcqa"] = _statistical_result((3.0, 2.5, 3.5), 7)
    findings = {f.claim: f for f in Statistical().render(results, tmp_path, tmp_path / "p.md")
                .findings}
    assert findings["speedup"].verdict == FAILS
    assert findings["significance"].verdict == FAILS
    assert "medmcqa: 3.00× [2.50×, 3.50×]" in findings["speedup"].measured


def test_page_renders_from_the_summary_and_keeps_other_experiments(tmp_path: Path):
    summary = {"data": "d", "python": "3.11", "last_run": {"experiments": ["statistical"],
                                                           "seconds": 3, "jobs": 2},
               "experiments": {"statistical": {
                   "date": "2026-12-02", "seconds": {"mmlu": 1.5},
                   "units": {"mmlu": _statistical_result((7.0, 6.5, 7.5), 10)},
                   "errors": {"gsm8k": "ValueError: boom"}}}}
    page = tmp_path / "results.md"
    render_page(summary, tmp_path, page)
    text = page.read_text()
    assert text.index("## The seeds' claims") < text.index("## Seed 001's statistics table")
    assert "**gsm8k failed**: ValueError: boom" in text
    assert "not run: `--experiments regret`" in text
    assert "[summary.json](summary.json)" in text


def test_cli_errors_are_clear(tmp_path: Path):
    result = runner.invoke(app, ["experiments", "--experiments", "tradeoff,nope"])
    assert result.exit_code == 2 and "unknown experiment(s) nope" in result.output
    result = runner.invoke(app, ["experiments", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["experiments", "--data", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "recognises a dataset" in result.output
    assert "Traceback" not in result.output


def test_the_shared_evaluation_is_computed_once(shared_data: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    import ladder.experiments.data as data_module

    calls = []

    def fake(train, test, how):
        calls.append(how)
        return {"n": train.n}

    monkeypatch.setattr(data_module, "_shared", fake)
    data = DataDir(shared_data, cache=tmp_path)
    first = data.evaluation("gsm8k")
    again = DataDir(shared_data, cache=tmp_path).evaluation("gsm8k")
    assert len(calls) == 1 and first[3] == again[3] == {"n": 150}
    assert first[0].n == first[1].n == 150  # no test split in the log: seeded 50/50


@pytest.mark.slow
def test_experiments_command_on_one_log(shared_data: Path, tmp_path: Path):
    """`ladder experiments` end to end on a folder holding only mot-cascade-date: the
    experiments that read it run, the rest have no unit, the page and summary are written."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "mot").symlink_to(shared_data / "mot-cascade-date")
    out = tmp_path / "out"
    result = runner.invoke(app, ["experiments", "--data", str(data), "--out", str(out),
                                 "--jobs", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    ran = {name for name, e in summary["experiments"].items() if e["units"]}
    assert ran and ran <= {"profile", "monotonicity"}
    assert "## The seeds' claims" in (out / "results.md").read_text()


def test_plan_starts_each_shared_evaluation_before_its_readers(shared_data: Path):
    from ladder.experiments.runner import EVALUATION, plan

    order = plan(["tradeoff", "statistical", "regret"], DataDir(shared_data))
    evaluations = [u for n, u in order if n == EVALUATION]
    assert evaluations == ["mmlu", "medmcqa", "triviaqa", "gsm8k"]  # each once
    for name, unit in order:
        if name in ("tradeoff", "statistical"):
            assert order.index((EVALUATION, unit)) < order.index((name, unit))
    assert order[0] == ("regret", "mmlu") or order[1] == ("regret", "mmlu")


def _regret_result(exponent: list[float], T: int = 1000) -> dict:
    s = {"T": T, "best_objective": 0.8, "regret_per_query": [0.02, 0.01, 0.03],
         "relative": [0.025, 0.0125, 0.0375], "sqrt_log_ratio_end": [0.1, 0.05, 0.2],
         "exponent": exponent, "exponent_defined": 20, "mean_exponent": exponent[0],
         "labels_per_query": 2.5}
    return {"split": "s", "T": T, "c": 0.5, "warm_weight": 100, "search": ["c=0.5: 0.7"],
            "first": 100, "warm_from": "x", "figure": "r.png", "offline_gap": 0.015,
            "n_train": 300, "runs": {"cold": s, "warm (x train)": s},
            "warm_minus_cold": [0.03, 0.01, 0.05], "warm_wins": 0.8,
            "online_minus_offline": {"cold": [0.0, -0.01, 0.01], "warm": [0.0, -0.01, 0.01]}}


def test_regret_finding_compares_the_exponent_band_with_sqrt_t_log_t(tmp_path: Path):
    from ladder.experiments.regret_report import Regret

    def verdict(band: list[float]) -> str:
        section = Regret().render({"mmlu": _regret_result(band)}, tmp_path, tmp_path / "p.md")
        assert "1.50% of J(π*)" in section.markdown  # the offline gap, for scale
        return section.findings[0].verdict

    bound = 0.5 + 1 / np.log(1000)  # 0.645: √T log T's local slope at T = 1000
    assert verdict([0.5, 0.4, bound - 0.01]) == HOLDS
    assert verdict([0.9, bound + 0.01, 1.0]) == FAILS
    assert verdict([0.6, 0.3, 0.9]) == UNSETTLED
