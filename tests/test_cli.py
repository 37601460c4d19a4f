"""The command line: exit codes, messages and the documents it writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ladder.cli import app

runner = CliRunner()
SUMMARY_KEYS = {"aiq", "cost_at_98", "cost_at_100", "cpt50", "cpt80", "apgr", "gap_closure_98"}
FAMILIES = {"fixed", "random", "oracle", "threshold", "dp", "auto", "seed_heuristic"}


def test_invalid_log_exits_2_naming_column_and_row(tmp_path):
    log = tmp_path / "bad.csv"
    pd.DataFrame({
        "query_id": ["a", "a", "b", "b"],
        "model": ["m1", "m2", "m1", "m2"],
        "quality": [1, 0, 1.5, 1],
        "cost": [1, 2, 1, 2],
    }).to_csv(log, index=False)
    result = runner.invoke(app, ["evaluate", str(log)])
    assert result.exit_code == 2
    assert "quality" in result.output and "row 2" in result.output
    assert "Traceback" not in result.output


def test_missing_file_and_unknown_format_exit_2(tmp_path):
    assert runner.invoke(app, ["evaluate", str(tmp_path / "nope.jsonl")]).exit_code == 2
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--format", "nonsense"])
    assert result.exit_code == 2 and "unknown format" in result.output


def test_unknown_model_is_a_clear_error(shared_data):
    result = runner.invoke(app, ["evaluate", str(shared_data / "zellinger-cascades"),
                                 "--models", "gpt-4o,not-a-model"])
    assert result.exit_code == 2 and "not-a-model" in result.output


def test_convert_then_evaluate_writes_json_and_report(shared_data, tmp_path):
    log = tmp_path / "z.jsonl.gz"
    source = str(shared_data / "zellinger-cascades")
    result = runner.invoke(app, ["convert", source, "-o", str(log)])
    assert result.exit_code == 0, result.output
    assert "42,444 rows" in result.output
    out, report = tmp_path / "r.json", tmp_path / "report"
    result = runner.invoke(app, [
        "evaluate", str(log), "--benchmark", "triviaqa", "--lambdas", "4", "--max-stages", "2",
        "--json", str(out), "--report", str(report),
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["n_train"] == 300 and document["n_test"] == 1000
    assert {m["name"] for m in document["models"]} >= {"gpt-4o", "llama3.2-1b"}
    assert {p["family"] for p in document["policies"]} == FAMILIES
    assert set(document["summary"]) == FAMILIES
    for summary in document["summary"].values():
        assert set(summary) >= SUMMARY_KEYS
        ci = summary["ci"]  # 90% bootstrap intervals bracket the point estimates
        assert ci["resamples"] == 1000 and ci["level"] == 0.9
        assert ci["aiq"]["low"] <= summary["aiq"] <= ci["aiq"]["high"]
    assert {(c["a"], c["b"]) for c in document["comparisons"]} >= {("auto", "threshold"),
                                                                  ("auto", "fixed")}
    assert all(p["choice"]["kind"] in ("fixed", "threshold", "dp")
               for p in document["policies"] if p["family"] == "auto")
    assert "## Intervals" in (report / "report.md").read_text()


def test_random_split_when_asked(shared_data, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, [
        "evaluate", str(shared_data / "zellinger-cascades"), "--benchmark", "triviaqa",
        "--models", "llama3.2-3b,gpt-4o-mini,llama3.1-70b", "--train-frac", "0.3", "--seed", "1",
        "--lambdas", "3", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["n_train"] == 390 and document["n_test"] == 910
    assert [m["name"] for m in document["models"]] == ["llama3.2-3b", "gpt-4o-mini",
                                                        "llama3.1-70b"]


@pytest.mark.slow
def test_full_mmlu_evaluation(shared_data, tmp_path):
    out = tmp_path / "mmlu.json"
    result = runner.invoke(app, ["evaluate", str(shared_data / "zellinger-cascades"),
                                 "--benchmark", "mmlu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["n_train"] == 285 and document["n_test"] == 1531
    best = max(m["quality"] for m in document["models"])
    assert best == pytest.approx(0.8517, abs=1e-4)
    # the oracle is the physical limit: no family beats its best quality
    oracle_best = max(p["quality"] for p in document["policies"] if p["family"] == "oracle")
    assert all(p["quality"] <= oracle_best + 1e-12 for p in document["policies"])
