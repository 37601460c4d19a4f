"""RouterDC's per-query scores of seven ~7B open models (shared/data/routerdc-7b-scores)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ladder.runlog.converters.layout import layout_reader
from ladder.runlog.schema import RunLogError

# Parameter counts in billions: the data has no costs, so model size stands in for cost.
PARAMS_B = {
    "mistralai/Mistral-7B-v0.1": 7.24,
    "meta-math/MetaMath-Mistral-7B": 7.24,
    "itpossible/Chinese-Mistral-7B-v0.1": 7.24,
    "HuggingFaceH4/zephyr-7b-beta": 7.24,
    "cognitivecomputations/dolphin-2.6-mistral-7b": 7.24,
    "meta-llama/Meta-Llama-3-8B": 8.03,
    "cognitivecomputations/dolphin-2.9-llama3-8b": 8.03,
}
_SPLIT = re.compile(r"^(?P<bench>.+?)[_-](?P<split>train|test)$")
_MCQ = ("mmlu", "arc_")


def _params(model: str) -> float:
    if model in PARAMS_B:
        return PARAMS_B[model]
    name = model.lower()
    if "llama3" in name or "llama-3" in name:
        return 8.03
    if "mistral" in name or "zephyr" in name:
        return 7.24
    raise RunLogError(
        f"RouterDC model '{model}': unknown parameter count, so no cost proxy", "model"
    )


def _records(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunLogError(f"{path}: not a RouterDC file (not valid JSON)") from None
    if not (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and {"question", "scores"} <= r.keys() for r in records)
    ):
        raise RunLogError(
            f"{path}: not a RouterDC file (a JSON list of {{'question', 'scores'}} records)"
        )
    return records


def is_routerdc_file(path: Path) -> bool:
    """True for a RouterDC score file (used by format detection)."""
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        _records(path)
    except RunLogError:
        return False
    return True


def _convert_file(path: Path) -> pd.DataFrame:
    records = _records(path)
    stem = path.stem
    match = _SPLIT.match(stem)
    benchmark, split = (match["bench"], match["split"]) if match else (stem, None)
    mcq = benchmark.lower().startswith(_MCQ)
    rows = []
    for i, record in enumerate(records):
        for model, score in record["scores"].items():
            score = float(score)
            row = {
                "query_id": f"{stem}/{i}",
                "model": model,
                "quality": (1.0 if score > 0 else 0.0) if mcq else score,
                "cost": _params(model),
                "benchmark": benchmark,
                "prompt": record["question"],
            }
            if split is not None:
                row["split"] = split
            if "cluster_id" in record:
                row["cluster_id"] = record["cluster_id"]
            rows.append(row)
    return pd.DataFrame(rows)


@layout_reader("a RouterDC score file")
def convert_routerdc(path: Path) -> pd.DataFrame:
    """One row per (question, model) from one RouterDC JSON file, or from every file in a folder.

    quality: multiple-choice files (mmlu*, arc_*) 1.0 if score > 0 (argmax choice correct),
    else 0.0; the other files' score is already the fraction of 10 samples correct (or 0/1).
    No confidence column: for MCQ the score is P(gold) only when the answer is right and 0
    otherwise, so using it as a confidence (or keeping it at all) would leak the label.
    cost: the model's parameter count in billions (Mistral-7B based 7.24, Llama-3-8B based
    8.03), a proxy, because the data holds no costs.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise RunLogError(f"{path}: no RouterDC .json files in this folder")
        return pd.concat([_convert_file(f) for f in files], ignore_index=True)
    if path.suffix != ".json":
        raise RunLogError(f"{path}: not a RouterDC file (expected a .json score file)")
    return _convert_file(path)
