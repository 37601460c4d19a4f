"""Converters from public logged-output layouts to the run-log format.

Each converter takes a path (file or folder) and returns a run-log DataFrame.
`convert(path, "auto")` picks one from the path's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ladder.runlog.converters.mot import convert_mot
from ladder.runlog.converters.routellm import convert_routellm
from ladder.runlog.converters.routerbench import COST_SUFFIX, convert_routerbench
from ladder.runlog.converters.routerdc import convert_routerdc, is_routerdc_file
from ladder.runlog.converters.zellinger import convert_zellinger
from ladder.runlog.io import file_kind, read_runlog
from ladder.runlog.schema import RunLogError

Converter = Callable[[Path], pd.DataFrame]

CONVERTERS: dict[str, Converter] = {
    "runlog": read_runlog,
    "zellinger": convert_zellinger,
    "routellm": convert_routellm,
    "mot": convert_mot,
    "routerdc": convert_routerdc,
    "routerbench": convert_routerbench,
}

FORMATS = ("auto", *CONVERTERS)


def _columns(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file without reading its rows; [] if unreadable."""
    kind = file_kind(path)
    try:
        if kind == "csv":
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
    except (ValueError, OSError):
        return []
    return []


def _is_routellm_dir(path: Path) -> bool:
    return (
        (path / "gsm8k" / "gsm8k_responses.csv").exists()
        or (path / "gsm8k_responses.csv").exists()
        or (path / "mmlu" / "responses").is_dir()
        or any((path / "responses").glob("mmlu_*.csv"))
        or (path.name == "responses" and any(path.glob("mmlu_*.csv")))
        or (path / "mt_bench" / "judgements.jsonl").exists()
        or ((path / "judgements.jsonl").exists() and (path / "question.jsonl").exists())
    )


def _detect_dir(path: Path) -> str:
    if (path / "flat" / "model_outputs.jsonl.gz").exists() or (
        path / "model_outputs.jsonl.gz"
    ).exists():
        return "zellinger"
    if all((path / d).is_dir() for d in ("GPT3_result", "GPT4_result", "llama2_13B_result")):
        return "mot"
    if _is_routellm_dir(path):
        return "routellm"
    jsons = sorted(path.glob("*.json"))
    if jsons and is_routerdc_file(jsons[0]):
        return "routerdc"
    raise RunLogError(f"{path}: a folder, and not one of the known layouts; name a file")


def detect_format(path: Path) -> str:
    """Guess the layout of a path; 'runlog' unless a known public layout is recognised.

    A CSV/Parquet holding query_id and model columns is always a run log; without them,
    `<model>|total_cost` columns mark RouterBench's wide table.
    """
    if path.is_dir():
        return _detect_dir(path)
    name = path.name
    if name == "model_outputs.jsonl.gz":
        return "zellinger"
    if path.suffix == ".json" and is_routerdc_file(path):
        return "routerdc"
    columns = _columns(path)
    if {"query_id", "model"} <= set(columns):
        return "runlog"
    if name == "gsm8k_responses.csv" or (
        name.startswith("mmlu_") and name.endswith(".csv") and "prompt" in columns
    ):
        return "routellm"
    if any(c.endswith(COST_SUFFIX) for c in columns):
        return "routerbench"
    return "runlog"


def convert(path: Path, format: str = "auto") -> pd.DataFrame:
    """Read `path` in the given layout and return it in the run-log format (not yet validated)."""
    if not path.exists():
        raise RunLogError(f"no such file or folder: {path}")
    if format == "auto":
        format = detect_format(path)
    if format not in CONVERTERS:
        raise RunLogError(f"unknown format '{format}'; choose one of {', '.join(FORMATS)}")
    return CONVERTERS[format](path)
