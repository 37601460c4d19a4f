"""Reading and writing run-log files (JSON Lines, optionally gzipped, CSV, Parquet).

Below the converters (which read files through it); `ladder.runlog.load` sits above both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ladder.runlog.schema import RunLogError

SUFFIXES = {
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".json.gz": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def file_kind(path: Path) -> str | None:
    """'jsonl', 'csv' or 'parquet' from the file name, None when the name says nothing."""
    name = path.name.lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def _parse_samples(value: object) -> object:
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def read_runlog(path: str | Path) -> pd.DataFrame:
    """Read a run-log file as it is (no conversion, no validation)."""
    path = Path(path)
    if not path.exists():
        raise RunLogError(f"no such file: {path}")
    kind = file_kind(path)
    try:
        if kind == "jsonl":
            # precise_float: the default parser is off by an ulp now and then, and a live
            # rung's signals must equal the logged ones exactly
            df = pd.read_json(path, lines=True, dtype=False, precise_float=True)
        elif kind == "csv":
            df = pd.read_csv(path, keep_default_na=True)
        elif kind == "parquet":
            df = pd.read_parquet(path)
        else:
            raise RunLogError(
                f"{path}: unknown file type; a run log ends in .jsonl, .jsonl.gz, .csv or .parquet"
            )
    except (ValueError, OSError) as error:
        if isinstance(error, RunLogError):
            raise
        raise RunLogError(f"{path}: cannot be read as {kind}: {error}") from error
    if "samples" in df.columns:
        df["samples"] = df["samples"].map(_parse_samples)
    return df


def write_runlog(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a run log; the format follows the file name (JSONL/.gz, CSV or Parquet)."""
    path = Path(path)
    kind = file_kind(path)
    if kind is None:
        raise RunLogError(f"{path}: name the output .jsonl, .jsonl.gz, .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "csv":
        out = df.copy()
        if "samples" in out.columns:
            out["samples"] = out["samples"].map(
                lambda v: json.dumps(list(v)) if isinstance(v, list | tuple) else v
            )
        out.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path
