"""The run-log rules (docs/runlog.md) on tiny hand-made logs: validation, file I/O, pivoting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ladder.runlog import (
    QueryTable,
    RunLogError,
    load_runlog,
    read_runlog,
    validate_runlog,
    write_runlog,
)


def tiny(**overrides: list) -> pd.DataFrame:
    """Two queries × two models; keyword arguments replace or add columns."""
    columns: dict[str, list] = {
        "query_id": ["q1", "q1", "q2", "q2"],
        "model": ["small", "big", "small", "big"],
        "quality": [0.0, 1.0, 1.0, 1.0],
        "cost": [0.001, 0.01, 0.001, 0.01],
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["query_id", "model", "quality", "cost"])
def test_missing_required_column(column: str) -> None:
    with pytest.raises(RunLogError, match=f"missing required column '{column}'") as error:
        validate_runlog(tiny().drop(columns=column))
    assert error.value.column == column


def test_quality_outside_unit_interval_names_column_and_row() -> None:
    with pytest.raises(RunLogError, match=r"column 'quality': row 2 .*outside \[0, 1\]") as error:
        validate_runlog(tiny(quality=[0.0, 1.0, 1.5, -0.2]))
    assert (error.value.column, error.value.row) == ("quality", 2)


def test_negative_cost() -> None:
    with pytest.raises(RunLogError, match="column 'cost': row 1") as error:
        validate_runlog(tiny(cost=[0.0, -0.01, 0.0, 0.0]))
    assert (error.value.column, error.value.row) == ("cost", 1)


def test_duplicate_query_model_pair() -> None:
    df = tiny(model=["small", "big", "small", "small"])
    with pytest.raises(RunLogError, match=r"row 3 repeats \('q2', 'small'\)") as error:
        validate_runlog(df)
    assert error.value.row == 3


def test_fewer_than_two_models() -> None:
    df = tiny(query_id=["q1", "q2", "q3", "q4"], model=["only"] * 4)
    with pytest.raises(RunLogError, match="at least 2"):
        validate_runlog(df)


def test_non_numeric_quality() -> None:
    with pytest.raises(RunLogError, match="column 'quality': row 1 holds 'good', not a number"):
        validate_runlog(tiny(quality=["1", "good", "0", "1"]))


def test_bools_accepted_as_quality() -> None:
    df = validate_runlog(tiny(quality=[False, True, True, True]))
    assert df["quality"].tolist() == [0.0, 1.0, 1.0, 1.0]
    df = validate_runlog(tiny(quality=["false", "True", "TRUE", "1"]))
    assert df["quality"].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_unknown_extra_columns_kept() -> None:
    df = validate_runlog(tiny(judge_note=["a", "b", "c", "d"], n_retries=[0, 1, 0, 2]))
    assert df["judge_note"].tolist() == ["a", "b", "c", "d"]
    assert df["n_retries"].tolist() == [0, 1, 0, 2]


def test_optional_columns_checked() -> None:
    with pytest.raises(RunLogError, match="column 'confidence': row 0"):
        validate_runlog(tiny(confidence=[1.2, 0.5, 0.5, 0.5]))
    with pytest.raises(RunLogError, match="column 'logprob_mean': row 3"):
        validate_runlog(tiny(logprob_mean=[-1.0, -0.1, 0.0, 0.3]))


# --- read / write ------------------------------------------------------------------------------


def rich_log() -> pd.DataFrame:
    return tiny(
        split=["train", "train", "test", "test"],
        prompt=["What, is 'x'?", "What, is 'x'?", 'say "hi"\nthen stop', 'say "hi"\nthen stop'],
        answer=["4", "5", None, "hi"],
        confidence=[0.9, 0.5, np.nan, 0.99],
        tokens_out=[3, 4, 5, 6],
        samples=[["4", "4", None], ["5"], [], ["hi", "hello"]],
        extra=["x", "y", "z", "w"],
    )


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz", "log.csv", "log.parquet"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    original = validate_runlog(rich_log())
    path = write_runlog(original, tmp_path / name)
    back = validate_runlog(read_runlog(path))
    assert back.columns.tolist() == original.columns.tolist()
    for column in ("query_id", "model", "split", "prompt", "extra"):
        assert back[column].tolist() == original[column].tolist(), column
    assert back["answer"].iloc[:2].tolist() == ["4", "5"] and pd.isna(back["answer"].iloc[2])
    np.testing.assert_allclose(back["quality"], original["quality"])
    np.testing.assert_allclose(back["cost"], original["cost"])
    np.testing.assert_allclose(back["confidence"], original["confidence"])
    np.testing.assert_allclose(back["tokens_out"], original["tokens_out"])
    samples = [list(s) for s in back["samples"]]  # Parquet gives arrays, the others lists
    assert samples == [["4", "4", None], ["5"], [], ["hi", "hello"]]
    assert len(load_runlog(path)) == 4


def test_samples_survive_csv_as_lists(tmp_path: Path) -> None:
    path = write_runlog(rich_log(), tmp_path / "log.csv")
    back = read_runlog(path)
    assert back["samples"].tolist() == [["4", "4", None], ["5"], [], ["hi", "hello"]]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="no such file"):
        read_runlog(tmp_path / "missing.jsonl")
    odd = tmp_path / "log.txt"
    odd.write_text("query_id\n")
    with pytest.raises(RunLogError, match="unknown file type"):
        read_runlog(odd)
    with pytest.raises(RunLogError, match="name the output"):
        write_runlog(tiny(), tmp_path / "log.txt")


# --- QueryTable --------------------------------------------------------------------------------


def ladder_log() -> pd.DataFrame:
    """Three models listed most-expensive first; q3 lacks 'mid'."""
    rows = []
    for q in ("q1", "q2", "q3"):
        for model, cost, quality in (("big", 1.0, 1.0), ("mid", 0.1, 0.5), ("small", 0.01, 0.0)):
            if q == "q3" and model == "mid":
                continue
            rows.append({"query_id": q, "model": model, "quality": quality, "cost": cost})
    return validate_runlog(pd.DataFrame(rows))


def test_query_table_drops_incomplete_queries() -> None:
    table = QueryTable.from_runlog(ladder_log())
    assert table.n == 2 and table.dropped == 1
    assert set(table.query_ids) == {"q1", "q2"}


def test_query_table_orders_by_mean_cost() -> None:
    table = QueryTable.from_runlog(ladder_log())
    assert table.models == ("small", "mid", "big")
    assert table.mean_cost().tolist() == pytest.approx([0.01, 0.1, 1.0])
    assert table.quality[:, table.index("big")].tolist() == [1.0, 1.0]


def test_query_table_honours_explicit_order() -> None:
    table = QueryTable.from_runlog(ladder_log(), models=["big", "small"])
    assert table.models == ("big", "small")
    assert table.n == 3 and table.dropped == 0  # q3 is complete for these two
    assert table.cost[0].tolist() == [1.0, 0.01]
    with pytest.raises(RunLogError, match="not in the log"):
        QueryTable.from_runlog(ladder_log(), models=["big", "huge"])


def test_query_table_sample_share() -> None:
    df = validate_runlog(tiny(samples=[["a", "a", "b", None], ["x"], [None, None], ["y", "z"]]))
    table = QueryTable.from_runlog(df, models=["small", "big"])
    assert table.sample_share is not None
    assert table.sample_share[:, 0].tolist() == [0.5, 0.0]  # all-None samples: no agreement
    assert table.sample_share[:, 1].tolist() == [1.0, 0.5]
