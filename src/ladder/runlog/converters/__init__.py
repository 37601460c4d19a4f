"""Converters from public logged-output layouts to the run-log format.

Each converter takes a path (file or folder) and returns a run-log DataFrame.
`convert(path, "auto")` picks one from the path's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ladder.runlog.converters.zellinger import convert_zellinger
from ladder.runlog.io import read_runlog
from ladder.runlog.schema import RunLogError

Converter = Callable[[Path], pd.DataFrame]

CONVERTERS: dict[str, Converter] = {
    "runlog": read_runlog,
    "zellinger": convert_zellinger,
}

FORMATS = ("auto", *CONVERTERS)


def detect_format(path: Path) -> str:
    """Guess the layout of a path; 'runlog' unless a known public layout is recognised."""
    if path.is_dir():
        if (path / "flat" / "model_outputs.jsonl.gz").exists() or (
            path / "model_outputs.jsonl.gz"
        ).exists():
            return "zellinger"
        raise RunLogError(f"{path}: a folder, and not one of the known layouts; name a file")
    if path.name == "model_outputs.jsonl.gz":
        return "zellinger"
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
