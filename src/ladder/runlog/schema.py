"""Columns of the run log and the rules a log must obey before anything is fitted on it."""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED = ("query_id", "model", "quality", "cost")
OPTIONAL_FLOAT = ("confidence", "margin", "entropy", "logprob_mean", "logprob_min", "latency_ms",
                  "judge_quality")
# optional columns that must lie in [0, 1]; judge_quality is a judge's label of the cell,
# kept beside a human one too (where both exist they measure the judge's error)
UNIT_FLOAT = ("confidence", "margin", "entropy", "judge_quality")
OPTIONAL_INT = ("tokens_in", "tokens_out")
OPTIONAL_STR = ("split", "benchmark", "prompt", "answer", "label_source", "label_judge")
# where a quality label came from: a person or a benchmark's grader, agreement with a
# reference rung's answer, or a judge model (`ladder.judge`); empty means human
LABEL_SOURCES = ("human", "reference", "judge")
COLUMNS = REQUIRED + OPTIONAL_STR + OPTIONAL_FLOAT + OPTIONAL_INT + ("samples",)


class RunLogError(ValueError):
    """A run log breaks the format; the message names the column and the first bad row."""

    def __init__(self, message: str, column: str | None = None, row: int | None = None):
        super().__init__(message)
        self.column = column
        self.row = row


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """The column as floats; a value that is not a number is an error naming its row."""
    values = df[column]
    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        mapped = values.map(lambda v: {"true": 1.0, "false": 0.0}.get(str(v).strip().lower(), v))
        numbers = pd.to_numeric(mapped, errors="coerce")
        bad = numbers.isna().to_numpy() & values.notna().to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise RunLogError(
                f"column '{column}': row {row} holds {values.iloc[row]!r}, not a number",
                column,
                row,
            )
        return numbers.to_numpy(dtype=float)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def validate_runlog(df: pd.DataFrame) -> pd.DataFrame:
    """Check a raw run log and return it with normalised dtypes.

    Raises RunLogError for a missing required column, quality outside [0, 1] (null is
    allowed: an unlabelled row),
    negative cost, duplicate (query_id, model) rows or fewer than two models.
    Rows are numbered from 0 in file order.
    """
    for column in REQUIRED:
        if column not in df.columns:
            raise RunLogError(f"missing required column '{column}'", column)
    df = df.reset_index(drop=True).copy()
    for column in ("query_id", "model"):
        missing = df[column].isna().to_numpy()
        if missing.any():
            row = _first_bad(missing)
            raise RunLogError(f"column '{column}': row {row} is empty", column, row)
        df[column] = df[column].astype(str)
    quality = _numeric(df, "quality")  # NaN = not labelled (served traffic before feedback)
    bad = ~np.isnan(quality) & ~((quality >= 0) & (quality <= 1))
    if bad.any():
        row = _first_bad(bad)
        raise RunLogError(
            f"column 'quality': row {row} holds {df['quality'].iloc[row]!r}, outside [0, 1]",
            "quality",
            row,
        )
    cost = _numeric(df, "cost")
    bad = ~(cost >= 0) | ~np.isfinite(cost)
    if bad.any():
        row = _first_bad(bad)
        raise RunLogError(
            f"column 'cost': row {row} holds {df['cost'].iloc[row]!r}, not a finite cost >= 0",
            "cost",
            row,
        )
    df["quality"], df["cost"] = quality, cost
    duplicated = df.duplicated(["query_id", "model"]).to_numpy()
    if duplicated.any():
        row = _first_bad(duplicated)
        raise RunLogError(
            f"columns 'query_id', 'model': row {row} repeats "
            f"({df['query_id'].iloc[row]!r}, {df['model'].iloc[row]!r})",
            "query_id",
            row,
        )
    n_models = df["model"].nunique()
    if n_models < 2:
        raise RunLogError(
            f"column 'model': the log holds {n_models} model(s); at least 2 are needed", "model"
        )
    for column in OPTIONAL_FLOAT + OPTIONAL_INT:
        if column in df.columns:
            df[column] = _numeric(df, column)
    for column in UNIT_FLOAT:
        if column in df.columns:
            values = df[column].to_numpy()
            bad = ~np.isnan(values) & ~((values >= 0) & (values <= 1))
            if bad.any():
                row = _first_bad(bad)
                raise RunLogError(
                    f"column '{column}': row {row} holds {values[row]!r}, outside [0, 1]",
                    column,
                    row,
                )
    for column in ("logprob_mean", "logprob_min"):
        if column in df.columns:
            values = df[column].to_numpy()
            bad = values > 0
            if bad.any():
                row = _first_bad(bad)
                raise RunLogError(
                    f"column '{column}': row {row} holds {values[row]!r}, a log-probability > 0",
                    column,
                    row,
                )
    for column in OPTIONAL_STR:
        if column in df.columns:
            df[column] = df[column].map(lambda v: None if _is_missing(v) else str(v))
    if "label_source" in df.columns:
        _check_sources(df["label_source"].to_numpy(dtype=object), quality)
    return df


def _check_sources(sources: np.ndarray, quality: np.ndarray) -> None:
    """A label's source is one of LABEL_SOURCES, and only a labelled cell has one."""
    given = np.array([isinstance(s, str) for s in sources], dtype=bool)
    bad = given & ~np.isin(sources, LABEL_SOURCES)
    if bad.any():
        row = _first_bad(bad)
        raise RunLogError(f"column 'label_source': row {row} holds {sources[row]!r}; a label "
                          f"comes from {', '.join(LABEL_SOURCES)}", "label_source", row)
    bad = given & np.isnan(quality)
    if bad.any():
        row = _first_bad(bad)
        raise RunLogError(f"column 'label_source': row {row} names a source "
                          f"({sources[row]!r}) but its quality is empty", "label_source", row)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
