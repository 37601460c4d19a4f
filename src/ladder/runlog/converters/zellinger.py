"""Zellinger et al.'s cascade logs, flat export (shared/data/zellinger-cascades/flat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ladder.runlog.converters.answers import normalise_letter, normalise_number, normalise_text
from ladder.runlog.converters.layout import layout_reader
from ladder.runlog.schema import RunLogError

_NORMALISERS = {
    "mmlu": normalise_letter,
    "medmcqa": normalise_letter,
    "gsm8k": normalise_number,
}


def _files(path: Path) -> tuple[Path, Path | None]:
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        folder = path / "flat" if (path / "flat").is_dir() else path
        outputs = folder / "model_outputs.jsonl.gz"
    else:
        outputs = path
    queries = folder / "queries.jsonl.gz"
    return outputs, queries if queries.exists() else None


@layout_reader("Zellinger et al.'s flat export (model_outputs.jsonl.gz, JSON lines)")
def convert_zellinger(path: Path) -> pd.DataFrame:
    """One row per (query, model): quality = correct, cost = cost_usd, confidence = exp(raw_conf).

    raw_conf is the answer token's log-probability (MCQ) or log P(yes) of self-verification
    (generative tasks); both become `confidence` in [0, 1]. The full output text is kept in
    `output`; `answer` is the normalised answer used for agreement features.
    """
    outputs, queries = _files(path)
    if not outputs.is_file():
        raise RunLogError(f"{path}: not the Zellinger layout, {outputs} is missing")
    raw = pd.read_json(outputs, lines=True, dtype={"qid": str})
    query_id = raw["benchmark"] + "/" + raw["split"] + "/" + raw["qid"].astype(str)
    answers = [
        _NORMALISERS.get(bench, normalise_text)(text)
        for bench, text in zip(raw["benchmark"], raw["answer"], strict=True)
    ]
    df = pd.DataFrame(
        {
            "query_id": query_id,
            "model": raw["model"],
            "quality": raw["correct"].astype(float),
            "cost": raw["cost_usd"].astype(float),
            "split": raw["split"],
            "benchmark": raw["benchmark"],
            "answer": answers,
            "output": raw["answer"],
            "confidence": np.exp(raw["raw_conf"].astype(float)),
            "conf_type": raw["conf_type"],
            "tokens_in": raw["tokens_in"],
            "tokens_out": raw["tokens_out"],
            "latency_ms": raw["latency_ms"],
        }
    )
    if queries is not None:
        prompts = pd.read_json(queries, lines=True, dtype={"qid": str})
        key = prompts["benchmark"] + "/" + prompts["split"] + "/" + prompts["qid"].astype(str)
        df["prompt"] = df["query_id"].map(dict(zip(key, prompts["user_prompt"], strict=True)))
    return df
