"""Filling a run log's missing labels with a judge (`ladder label`).

Null `quality` cells are filled; a label already there is left alone and marked `human`
where it names no source. Each filled cell gets `label_source` (reference or judge) and
`label_judge` (the judge's provenance: model, reference rung, rubric digest, mode). Every
graded cell, labelled ones included (`calibrate`), gets `judge_quality`: where a human label
and the judge's sit side by side they measure the judge's error, which the quality-target
mode uses to keep its promise on judge labels (`ladder.policies.ppi`).

Every verdict is appended to a journal beside the output as it arrives, so an interrupted
run resumes where it stopped, and a judge changed since starts afresh. A cell the judge
could not grade stays null and is counted, never guessed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ladder.judge.grader import HUMAN, Judge, Verdict
from ladder.runlog import RunLogError, validate_runlog, write_runlog

TEXT_COLUMNS = ("text", "output")  # a log's whole generated text, when it keeps one


@dataclass
class LabelSummary:
    """What a labelling run did, cell by cell."""

    output: Path
    kept: int = 0  # labels the log already had
    filled: Counter[str] = field(default_factory=Counter)  # this run's labels by source
    resumed: int = 0  # labels an interrupted earlier run had made
    calibrated: int = 0  # labelled cells the judge graded too (judge_quality beside them)
    unlabelled: int = 0  # cells still null (not sampled, or the judge could not tell)
    failures: Counter[str] = field(default_factory=Counter)
    judge_cost: float = 0.0


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".judged.jsonl")


def _read_journal(path: Path, provenance: str) -> dict[tuple[str, str], tuple[float, str]]:
    """Labels an earlier run of the same judge made; a half-written last line is skipped."""
    done: dict[tuple[str, str], tuple[float, str]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("label_judge") == provenance:
            done[(entry["query_id"], entry["model"])] = (entry["quality"], entry["label_source"])
    return done


def _texts(df: pd.DataFrame) -> pd.Series:
    for column in TEXT_COLUMNS:
        if column in df.columns:
            return df[column].where(df[column].notna(), df.get("answer"))
    return df["answer"] if "answer" in df.columns else pd.Series([None] * len(df))


def sampled_queries(query_ids: np.ndarray, share: float, seed: int) -> set[str]:
    """A seeded share of the distinct queries: the ones a sampling judge sees."""
    unique = np.array(sorted(set(map(str, query_ids))), dtype=object)
    rng = np.random.default_rng(seed)
    k = round(share * len(unique))
    return set(unique[rng.permutation(len(unique))[:k]])


async def label_runlog(df: pd.DataFrame, judge: Judge, output: Path, *,
                       concurrency: int = 4, sample: float = 1.0, seed: int = 0,
                       calibrate: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> LabelSummary:
    """Grade every null quality cell of a validated run log (of the `sample` share of its
    queries), and its labelled cells too when `calibrate`, and write the labelled log to
    `output` (see the module docstring)."""
    if judge.reference is not None and judge.reference not in set(df["model"]):
        raise RunLogError(f"the reference rung {judge.reference!r} is not a model of the log "
                          f"({', '.join(sorted(set(df['model'])))})", "model")
    if "answer" not in df.columns and not any(c in df.columns for c in TEXT_COLUMNS):
        raise RunLogError("the log has no 'answer' column: there is nothing to grade", "answer")
    if judge.model is not None and "prompt" not in df.columns:
        raise RunLogError("the judge model reads the query: the log has no 'prompt' column",
                          "prompt")
    df = df.reset_index(drop=True).copy()
    summary = LabelSummary(output)
    source = df["label_source"] if "label_source" in df.columns else pd.Series([None] * len(df))
    labelled = df["quality"].notna().to_numpy()
    df["label_source"] = np.where(labelled, source.fillna(HUMAN), None)
    for column in ("label_judge", "judge_quality"):
        if column not in df.columns:
            df[column] = None
    df["judge_quality"] = df["judge_quality"].astype(float)
    summary.kept = int(labelled.sum())
    seen = sampled_queries(df["query_id"].to_numpy(), sample, seed) if sample < 1 else None
    todo = [i for i in range(len(df)) if (calibrate or not labelled[i])
            and (seen is None or df.at[i, "query_id"] in seen)]
    summary.unlabelled = int((~labelled).sum()) - int((~labelled[todo]).sum())
    journal = journal_path(output)
    earlier = _read_journal(journal, judge.provenance)
    answers = df["answer"] if "answer" in df.columns else _texts(df)
    texts, prompts = _texts(df), df.get("prompt")
    reference_rows = {}
    if judge.reference is not None:
        ref = df[df["model"] == judge.reference]
        reference_rows = dict(zip(ref["query_id"], ref.index, strict=True))
    results: dict[int, Verdict] = {}
    pending = []
    for i in todo:
        key = (df.at[i, "query_id"], df.at[i, "model"])
        if key in earlier:
            quality, made_by = earlier[key]
            results[i] = Verdict(quality, made_by)
            summary.resumed += 1
        else:
            pending.append(i)
    gate = asyncio.Semaphore(concurrency)
    done = len(results)
    output.parent.mkdir(parents=True, exist_ok=True)

    async def grade(i: int) -> None:
        nonlocal done
        query_id, model = df.at[i, "query_id"], df.at[i, "model"]
        at = reference_rows.get(query_id)
        own = at is None or model == judge.reference
        async with gate:  # the judge reads a table's NaN as no answer
            verdict = judge.own_verdict(model) or await judge.grade(
                None if prompts is None else prompts[i], answers[i],
                None if own else answers[at], answer_text=texts[i],
                reference_text=None if own else texts[at])
        results[i] = verdict
        summary.judge_cost += verdict.cost
        if verdict.quality is not None:
            with journal.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"query_id": query_id, "model": model,
                                    "quality": verdict.quality,
                                    "label_source": verdict.source,
                                    "label_judge": judge.provenance}) + "\n")
        done += 1
        if progress is not None:
            progress(done, len(todo))

    if progress is not None:
        progress(done, len(todo))
    await asyncio.gather(*(grade(i) for i in pending))
    fresh = set(pending)
    for i, verdict in results.items():
        if verdict.quality is None:
            summary.unlabelled += int(not labelled[i])
            continue
        df.at[i, "judge_quality"] = verdict.quality
        if labelled[i]:
            summary.calibrated += 1
            continue
        df.at[i, "quality"] = verdict.quality
        df.at[i, "label_source"] = verdict.source
        df.at[i, "label_judge"] = judge.provenance
        if i in fresh:
            summary.filled[verdict.source] += 1
    summary.failures = Counter(judge.failures)
    write_runlog(validate_runlog(df), output)
    return summary
