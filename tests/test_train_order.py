"""The ladder order and the fit are chosen on training rows only, and `ladder fit` refuses
λ, chains and model lists that cannot mean what the user wants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ladder.cli import app
from ladder.evaluate.split import split_table
from ladder.runlog import QueryTable, RunLogError, validate_runlog

runner = CliRunner()


def crossing_log(n: int = 80) -> pd.DataFrame:
    """Models a and b whose cost order flips between train and test: on train a costs 1 and
    b 2, on test a costs 10 and b 2, so over every row b (2) is cheaper than a (5.5)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        split = "train" if i < n // 2 else "test"
        for model, skill, cost in (("a", 0.6, 1.0 if split == "train" else 10.0),
                                   ("b", 0.9, 2.0)):
            correct = float(rng.random() < skill)
            rows.append({"query_id": f"q{i}", "model": model, "quality": correct, "cost": cost,
                         "confidence": float(np.clip(0.5 * correct + 0.5 * rng.random(), 0, 1)),
                         "split": split})
    return pd.DataFrame(rows)


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "log.csv"
    crossing_log().to_csv(path, index=False)
    return path


def test_split_column_orders_both_tables_by_train_cost():
    table = QueryTable.from_runlog(validate_runlog(crossing_log()))
    assert table.models == ("b", "a")  # over every row
    train, test, _ = split_table(table)
    assert train.models == test.models == ("a", "b")
    assert test.mean_cost().tolist() == [10.0, 2.0]  # columns moved with their names


def test_random_split_orders_by_its_own_train_part():
    # a costs 1 except on q0 (100), b always 2: over every row a is dearer (2.24 > 2), on any
    # train part without q0 it is cheaper
    df = crossing_log().drop(columns="split")
    df.loc[df["model"] == "a", "cost"] = 1.0
    df.loc[(df["model"] == "a") & (df["query_id"] == "q0"), "cost"] = 100.0
    table = QueryTable.from_runlog(validate_runlog(df))
    assert table.models == ("b", "a")
    for seed in range(20):
        train, test, _ = split_table(table, train_frac=0.5, seed=seed)
        assert train.models == test.models
        assert train.models == (("b", "a") if "q0" in train.query_ids else ("a", "b")), seed


def test_a_given_model_order_is_kept():
    table = QueryTable.from_runlog(validate_runlog(crossing_log()), models=["b", "a"])
    train, test, _ = split_table(table)
    assert train.models == test.models == ("b", "a")


def test_repeated_model_is_named():
    with pytest.raises(RunLogError, match="a repeated"):
        QueryTable.from_runlog(validate_runlog(crossing_log()), models=["a", "a"])


def test_evaluate_reports_models_in_train_cost_order(log_path, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["evaluate", str(log_path), "--lambdas", "2", "--max-stages",
                                 "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    import json

    assert [m["name"] for m in json.loads(out.read_text())["models"]] == ["a", "b"]


@pytest.mark.parametrize("args, message", [
    (["--models", "a,a"], "a repeated"),
    (["--lambdas", "201"], "at most 200"),
])
def test_evaluate_refuses(log_path, args, message):
    result = runner.invoke(app, ["evaluate", str(log_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def fit(log_path, tmp_path, *args: str):
    return runner.invoke(app, ["fit", str(log_path), "-o", str(tmp_path / "p.json"),
                               "--policy", "threshold", "--max-stages", "2", *args])


def test_fit_defaults_to_the_train_split(log_path, tmp_path):
    result = fit(log_path, tmp_path)
    assert result.exit_code == 0, result.output
    assert "the train split (40 queries)" in result.output
    result = fit(log_path, tmp_path, "--split", "all")
    assert result.exit_code == 0, result.output
    assert "every row (80 queries)" in result.output


@pytest.mark.parametrize("lam", ["nan", "inf", "-inf", "1e308", "600000"])
def test_fit_refuses_a_meaningless_lambda(log_path, tmp_path, lam):
    # the dearest mean train cost is 2: λ·2 must stay ≤ 1e6
    result = fit(log_path, tmp_path, "--lambda", lam)
    assert result.exit_code == 2, result.output
    assert "λ" in result.output and "Traceback" not in result.output


def test_fit_accepts_lambda_at_the_bound(log_path, tmp_path):
    assert fit(log_path, tmp_path, "--lambda", "500000").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--chain", "b,a"], "order it a,b"),  # dearest first on train (b 2, a 1)
    (["--chain", "a,a"], "a repeated"),
    (["--models", "a,a"], "a repeated"),
    (["--split", "val"], "--split all"),
])
def test_fit_refuses(log_path, tmp_path, args, message):
    result = fit(log_path, tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
