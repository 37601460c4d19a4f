"""MoT cascade logs on BIG-Bench Date Understanding (shared/data/mot-cascade-date).

Yue et al. (ICLR 2024) sampled Llama-2-13B (20 samples), GPT-3.5-turbo (20) and GPT-4 (one
greedy sample) on the same 369 questions. The sampled answers are kept as `samples`, so
self-consistency (top-answer share) can drive a cascade.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ladder.runlog.converters.layout import layout_reader
from ladder.runlog.schema import RunLogError

# Characters of each few-shot prompt set (upstream Evaluation/prompting/date.py).
PROMPT_CHARS = {"cot1": 1785, "cot2": 1676, "pot1": 2577, "pot2": 2472}
CHARS_PER_TOKEN = 4.0
# Dollars per 1K tokens (input, output). GPT prices are the ones the upstream code uses; the
# Llama-2-13B price is an assumption (a typical hosted 13B price), since it was run locally.
PRICES = {
    "llama-2-13b": (0.0002, 0.0002),
    "gpt-3.5-turbo": (0.0015, 0.002),
    "gpt-4": (0.03, 0.06),
}


def _files(folder: Path, prompt_set: str) -> dict[str, Path]:
    return {
        "llama-2-13b": folder / "llama2_13B_result" / f"date_{prompt_set}.json",
        "gpt-3.5-turbo": folder / "GPT3_result" / f"date_{prompt_set}.json",
        "gpt-4": folder / "GPT4_result" / f"date_greedy_{prompt_set}.json",
    }


def _gold(answer: object, path: Path, index: int) -> str:
    """The gold date: a string in the GPT files, {option: 0/1} (BIG-Bench targets) for Llama."""
    if isinstance(answer, dict):
        gold = [option for option, score in answer.items() if score == 1]
        if len(gold) != 1:
            raise RunLogError(f"{path}: record {index} has {len(gold)} gold options, not 1")
        return gold[0]
    if not isinstance(answer, str):
        raise RunLogError(f"{path}: record {index} has no gold answer")
    return answer


def _load(path: Path) -> list[dict]:
    if not path.exists():
        raise RunLogError(
            f"{path.parent.parent}: not the MoT layout, {path.name} is missing "
            f"from {path.parent.name}/"
        )
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunLogError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    keys = {"question", "answer", "generated", "results", "prediction"}
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and keys <= r.keys() for r in records
    ):
        raise RunLogError(f"{path}: not a MoT result file (a list of records with {sorted(keys)})")
    return records


def _tokens(chars: float) -> int:
    return round(chars / CHARS_PER_TOKEN)


@layout_reader("MoT's result files")
def convert_mot(path: Path, prompt_set: str = "cot1") -> pd.DataFrame:
    """One row per (question, model) for one demonstration set (cot1, cot2, pot1 or pot2).

    answer = the stored majority answer (`prediction`), samples = every sampled answer (None
    where extraction failed), quality = answer == gold date. No token counts are stored, and
    tiktoken would download files at run time, so tokens are estimated as characters / 4:
    tokens_in = (few-shot prompt + question) / 4, tokens_out = all samples joined by newlines / 4,
    and cost (dollars) charges the prompt once per call plus all samples, as upstream does, at
    gpt-3.5-turbo $0.0015/$0.002 and gpt-4 $0.03/$0.06 per 1K tokens in/out. Llama-2-13B ran
    locally; its $0.0002/$0.0002 is an assumed hosted 13B price.
    """
    path = Path(path)
    if prompt_set not in PROMPT_CHARS:
        raise RunLogError(
            f"unknown MoT prompt set '{prompt_set}'; choose one of {', '.join(PROMPT_CHARS)}"
        )
    if not path.is_dir():
        raise RunLogError(f"{path}: the MoT converter takes the mot-cascade-date folder")
    loaded = {model: (file, _load(file)) for model, file in _files(path, prompt_set).items()}
    reference_file, reference = loaded["gpt-3.5-turbo"]
    golds = [_gold(r["answer"], reference_file, i) for i, r in enumerate(reference)]
    questions = [r["question"] for r in reference]
    rows = []
    for model, (file, records) in loaded.items():
        if len(records) != len(reference):
            raise RunLogError(
                f"{file}: {len(records)} records, but {reference_file.name} has {len(reference)}"
            )
        price_in, price_out = PRICES[model]
        for i, record in enumerate(records):
            if record["question"] != questions[i]:
                raise RunLogError(
                    f"{file}: record {i} is a different question than in {reference_file}"
                )
            if _gold(record["answer"], file, i) != golds[i]:
                raise RunLogError(
                    f"{file}: record {i} has a different gold answer than in {reference_file}"
                )
            answer = record["prediction"]
            tokens_in = _tokens(PROMPT_CHARS[prompt_set] + len(questions[i]))
            tokens_out = _tokens(len("\n".join(record["generated"])))
            rows.append(
                {
                    "query_id": f"date/{i}",
                    "model": model,
                    "quality": float(answer is not None and answer == golds[i]),
                    "cost": (tokens_in * price_in + tokens_out * price_out) / 1000.0,
                    "benchmark": "date",
                    "prompt": questions[i],
                    "answer": answer,
                    "samples": list(record["results"]),
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "prompt_set": prompt_set,
                }
            )
    return pd.DataFrame(rows)
