"""RouterBench's wide table (withmartian/routerbench): one row per prompt, columns per model.

Layout: sample_id, prompt, eval_name, optionally oracle_model_to_route_to, and for each model
`<model>` (its performance in [0, 1]), `<model>|model_response` and `<model>|total_cost`
(dollars). Only CSV (optionally .gz) and Parquet are read: the upstream release is a pickle,
and unpickling a downloaded file can run arbitrary code, so convert it to Parquet yourself first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ladder.runlog.converters.layout import layout_reader
from ladder.runlog.io import file_kind
from ladder.runlog.schema import RunLogError

COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"
KEY_COLUMNS = ("sample_id", "prompt", "eval_name")


def routerbench_models(columns: list[str]) -> list[str]:
    """Model names of a RouterBench table: every `<model>` that has a `<model>|total_cost`."""
    return [c[: -len(COST_SUFFIX)] for c in columns if c.endswith(COST_SUFFIX)]


def _read(path: Path) -> pd.DataFrame:
    kind = file_kind(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise RunLogError(
            f"{path}: pickles are not read (unpickling can run code); "
            "save the table as .parquet or .csv and convert that"
        )
    try:
        if kind == "csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        if kind == "parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError) as error:
        raise RunLogError(f"{path}: cannot be read as {kind}: {error}") from None
    raise RunLogError(f"{path}: a RouterBench table must be .csv, .csv.gz or .parquet")


@layout_reader("a RouterBench table")
def convert_routerbench(path: Path) -> pd.DataFrame:
    """One run-log row per (sample_id, model) from RouterBench's wide table.

    quality = `<model>`, cost = `<model>|total_cost`, output = `<model>|model_response`,
    benchmark = eval_name. Cells with no performance or no cost (a model not run on that prompt)
    give no row, so the query is dropped (and counted) when the table is pivoted.
    """
    path = Path(path)
    if not path.is_file():
        raise RunLogError(f"{path}: the RouterBench converter takes one .csv or .parquet file")
    wide = _read(path)
    columns = [str(c) for c in wide.columns]
    models = routerbench_models(columns)
    if not models:
        raise RunLogError(f"{path}: not a RouterBench table (no '<model>{COST_SUFFIX}' columns)")
    missing = [c for c in ("sample_id", *models) if c not in columns]
    if missing:
        raise RunLogError(
            f"{path}: not a RouterBench table, missing column(s) {', '.join(map(repr, missing))}",
            missing[0],
        )
    ids = wide["sample_id"].astype(str)
    if ids.duplicated().any() and "eval_name" in columns:
        ids = wide["eval_name"].astype(str) + "/" + ids
    frames = []
    for model in models:
        frame = pd.DataFrame(
            {
                "query_id": ids.to_numpy(),
                "model": model,
                "quality": wide[model].to_numpy(),
                "cost": wide[model + COST_SUFFIX].to_numpy(),
            }
        )
        if "eval_name" in columns:
            frame["benchmark"] = wide["eval_name"].to_numpy()
        if "prompt" in columns:
            frame["prompt"] = wide["prompt"].to_numpy()
        if model + RESPONSE_SUFFIX in columns:
            frame["output"] = wide[model + RESPONSE_SUFFIX].to_numpy()
        frames.append(frame[frame["quality"].notna() & frame["cost"].notna()])
    return pd.concat(frames, ignore_index=True)
