"""The command line: exit codes, messages and the documents it writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ladder.cli import app

runner = CliRunner()
SUMMARY_KEYS = {"aiq", "cost_at_98", "cost_at_100", "cpt50", "cpt80", "apgr", "gap_closure_98"}
FAMILIES = {"fixed", "random", "oracle", "threshold", "dp", "auto", "seed_heuristic", "moa",
            "router", "routed"}


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
    assert all(p["choice"]["kind"] in ("fixed", "threshold", "dp", "routed")
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


def two_model_log(path, small_cost: float, big_cost: float):
    """100 queries, half train / half test; big always right, small right on 49 of 50."""
    rows = []
    for i in range(100):
        split = "train" if i < 50 else "test"
        rows.append({"query_id": f"q{i}", "model": "small", "quality": float(i % 50 != 0),
                     "cost": small_cost, "split": split})
        rows.append({"query_id": f"q{i}", "model": "big", "quality": 1.0, "cost": big_cost,
                     "split": split})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_evaluate_when_the_cheapest_hull_point_already_reaches_98(tmp_path):
    # small reaches 98% of big; 0.01 / 4.7 * 4.7 < 0.01, which once put the mixture at 98%
    # below the cheapest hull vertex and ended in a traceback
    log, out = two_model_log(tmp_path / "log.csv", 0.01, 4.7), tmp_path / "r.json"
    result = runner.invoke(app, ["evaluate", str(log), "--lambdas", "2", "--max-stages", "2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    fixed = json.loads(out.read_text())["summary"]["fixed"]
    assert fixed["cost_at_98"] == pytest.approx(0.01 / 4.7)
    assert fixed["mix_at_98"]["weight_b"] == 0.0


def test_evaluate_with_every_cost_zero_reports_quality_only(tmp_path):
    log, out = two_model_log(tmp_path / "log.csv", 0.0, 0.0), tmp_path / "r.json"
    result = runner.invoke(app, ["evaluate", str(log), "--lambdas", "2", "--max-stages", "2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "costs 0" in result.output and "undefined" in result.output
    summaries = json.loads(out.read_text())["summary"]
    for summary in summaries.values():
        assert all(summary[key] is None for key in SUMMARY_KEYS)
    assert all(summaries[f]["max_quality"] == 1.0 for f in ("fixed", "oracle", "threshold", "dp"))
