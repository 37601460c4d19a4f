"""RouteLLM's GPT-4-1106 vs Mixtral-8x7B eval responses (shared/data/routellm-gpt4-mixtral).

The data holds no costs. RouteLLM measures cost only as the share of calls sent to the strong
model, so this converter charges 1.0 per GPT-4 call and 0.0 per Mixtral call: a policy's mean
cost is then its fraction of strong-model calls, exactly RouteLLM's x-axis.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ladder.runlog.converters.answers import normalise_number
from ladder.runlog.converters.layout import layout_reader
from ladder.runlog.schema import RunLogError

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MODELS = (WEAK, STRONG)
_MMLU_FILE = re.compile(r"^mmlu_(.+)\.csv$")


def _cost(model: str) -> float:
    return 1.0 if model == STRONG else 0.0


def _contaminated(path: Path) -> set[str]:
    """eval_prompt values RouteLLM drops because they overlap its router training data."""
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as handle:
        return {json.loads(line)["eval_prompt"] for line in handle if line.strip()}


def _long(wide: pd.DataFrame, ids: list[str], benchmark: str) -> pd.DataFrame:
    """One row per (prompt, model) from a wide correctness table (bool column per model)."""
    frames = []
    for model in MODELS:
        if model not in wide.columns:
            raise RunLogError(f"RouteLLM {benchmark} file has no column '{model}'", model)
        frame = pd.DataFrame(
            {
                "query_id": ids,
                "model": model,
                "quality": wide[model].astype(float).to_numpy(),
                "cost": _cost(model),
                "benchmark": benchmark,
                "prompt": wide["prompt"].to_numpy(),
            }
        )
        response = f"{model}_response"
        if response in wide.columns:
            texts = [t if isinstance(t, str) else None for t in wide[response]]
            frame["answer"] = [normalise_number(t) for t in texts]
            frame["output"] = texts
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _read_csv(path: Path) -> pd.DataFrame:
    wide = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if "prompt" not in wide.columns:
        raise RunLogError(f"{path}: not a RouteLLM responses file (no 'prompt' column)")
    return wide


def _gsm8k(csv: Path, decontaminate: bool) -> pd.DataFrame:
    wide = _read_csv(csv)
    ids = [f"gsm8k/{i}" for i in range(len(wide))]
    if decontaminate:
        keep = ~wide["prompt"].isin(_contaminated(csv.parent / "contaminated_prompts.jsonl"))
        wide, ids = wide[keep.to_numpy()], [q for q, k in zip(ids, keep, strict=True) if k]
    return _long(wide, ids, "gsm8k")


def _mmlu(files: list[Path], contaminated: set[str]) -> pd.DataFrame:
    frames = []
    for csv in files:
        subject = _MMLU_FILE.match(csv.name).group(1)  # type: ignore[union-attr]
        wide = _read_csv(csv)
        ids = [f"mmlu/{subject}/{i}" for i in range(len(wide))]
        keep = ~wide["prompt"].isin(contaminated)
        wide, ids = wide[keep.to_numpy()], [q for q, k in zip(ids, keep, strict=True) if k]
        frame = _long(wide, ids, "mmlu")
        frame["subject"] = subject
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _mmlu_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("mmlu_*.csv") if _MMLU_FILE.match(p.name))


def _mt_bench(folder: Path, decontaminate: bool) -> pd.DataFrame:
    """One query per (question, turn); quality = (judge score - 1) / 9, so 1-10 maps to [0, 1]."""
    questions = pd.read_json(folder / "question.jsonl", lines=True)
    judged = pd.read_json(folder / "judgements.jsonl", lines=True)
    turns = {
        (int(q), t + 1): text
        for q, ts in zip(questions["question_id"], questions["turns"], strict=True)
        for t, text in enumerate(ts)
    }
    category = dict(zip(questions["question_id"].astype(int), questions["category"], strict=True))
    if decontaminate:
        dropped: set[int] = set()
        contaminated_file = folder / "contaminated_prompts.jsonl"
        if contaminated_file.exists():
            prompts = pd.read_json(contaminated_file, lines=True)
            ids = questions["question_id"].astype(int).tolist()
            dropped |= {ids[i] for i in prompts["eval_idx"] if 0 <= i < len(ids)}
            bad = set(prompts["eval_prompt"])
            dropped |= {q for (q, _), text in turns.items() if text in bad}
        judged = judged[~judged["question_id"].astype(int).isin(dropped)]
    qid = judged["question_id"].astype(int)
    turn = judged["turn"].astype(int)
    return pd.DataFrame(
        {
            "query_id": [f"mt_bench/{q}/{t}" for q, t in zip(qid, turn, strict=True)],
            "model": judged["model"].to_numpy(),
            "quality": ((judged["score"].astype(float) - 1.0) / 9.0).to_numpy(),
            "cost": [_cost(m) for m in judged["model"]],
            "benchmark": "mt_bench",
            "prompt": [turns.get((q, t)) for q, t in zip(qid, turn, strict=True)],
            "turn": pd.array(turn.to_numpy(), dtype="Int64"),
            "category": [category.get(q) for q in qid],
            "score": judged["score"].astype(float).to_numpy(),
        }
    )


@layout_reader("RouteLLM's eval responses")
def convert_routellm(path: Path, decontaminate: bool = True) -> pd.DataFrame:
    """GSM8K, MMLU and MT-Bench as run-log rows for GPT-4-1106 and Mixtral-8x7B.

    quality: GSM8K/MMLU correctness as 0/1; MT-Bench (score - 1) / 9 of the GPT-4 judge.
    cost: 1.0 for a gpt-4-1106-preview call, 0.0 for Mixtral (no costs in the data; this is
    RouteLLM's own measure, mean cost = share of strong-model calls).
    decontaminate: drop the prompts RouteLLM drops (contaminated_prompts.jsonl), as its
    benchmarks do. `path` is the dataset folder, the gsm8k CSV, the mmlu (or responses)
    folder, one mmlu_<subject>.csv, or the mt_bench folder.
    """
    path = Path(path)
    parts: list[pd.DataFrame] = []
    if path.is_file():
        if path.name == "gsm8k_responses.csv":
            parts.append(_gsm8k(path, decontaminate))
        elif _MMLU_FILE.match(path.name):
            folder = path.parent.parent if path.parent.name == "responses" else path.parent
            bad = _contaminated(folder / "contaminated_prompts.jsonl") if decontaminate else set()
            parts.append(_mmlu([path], bad))
        else:
            raise RunLogError(
                f"{path}: not a RouteLLM file (expected gsm8k_responses.csv or mmlu_<subject>.csv)"
            )
    elif path.is_dir():
        root_mmlu = path / "mmlu" if (path / "mmlu").is_dir() else None
        gsm8k = path / "gsm8k" / "gsm8k_responses.csv"
        if not gsm8k.exists() and (path / "gsm8k_responses.csv").exists():
            gsm8k = path / "gsm8k_responses.csv"
        if gsm8k.exists():
            parts.append(_gsm8k(gsm8k, decontaminate))
        mmlu_root = root_mmlu or (path if (path / "responses").is_dir() else None)
        if mmlu_root is not None:
            files, contaminated_dir = _mmlu_files(mmlu_root / "responses"), mmlu_root
        else:
            files, contaminated_dir = _mmlu_files(path), path.parent
        if files:
            bad = (
                _contaminated(contaminated_dir / "contaminated_prompts.jsonl")
                if decontaminate
                else set()
            )
            parts.append(_mmlu(files, bad))
        mt = path / "mt_bench" if (path / "mt_bench").is_dir() else path
        if (mt / "judgements.jsonl").exists() and (mt / "question.jsonl").exists():
            parts.append(_mt_bench(mt, decontaminate))
    if not parts:
        raise RunLogError(
            f"{path}: not a RouteLLM layout (expected gsm8k/gsm8k_responses.csv, "
            "mmlu/responses/mmlu_<subject>.csv or mt_bench/judgements.jsonl)"
        )
    return pd.concat(parts, ignore_index=True)
