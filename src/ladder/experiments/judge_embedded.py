"""The judge on the embedded models: Gemma-3-270M grading the free-text answers of
SmolLM2-135M (and its own) to the built-in questions, against its own answer, against the
questions' references, and alone; its labels compared with the true grades, and the
default policy fitted on the labels shadow runs would give, judged on the true ones.

It runs the judge model in process (the `local` extra); every verdict is cached beside the
results, keyed by the llama.cpp build, so a rerun on the same machine asks nothing again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ladder.backends.base import BackendError
from ladder.backends.build import llama_cpp_module
from ladder.evaluate.intervals import Resamples, mean_interval, paired_mean_interval
from ladder.experiments.base import relative
from ladder.judge.grader import Judge
from ladder.report import markdown_table

JUDGE_MODEL, CANDIDATE = "gemma3-270m", "smollm2-135m"
# how each labelling grades a cell: (judge mode, what the reference is)
LABELLINGS = {
    "agreement with Gemma's answer": ("agreement", "gemma"),
    "Gemma vs Gemma's answer": ("model", "gemma"),
    "Gemma vs the reference": ("model", "truth"),
    "Gemma alone": ("model", None),
    "shadow runs' rule": ("auto", "gemma"),
}
SHADOW = "shadow runs' rule"  # what the gateway's shadow runs store (server.shadow)
N_RESAMPLES = 1000


def embedded_available() -> bool:
    """The in-process models can run here (llama-cpp-python is installed)."""
    try:
        llama_cpp_module()
    except BackendError:
        return False
    return True


def _cells(table, items: dict) -> list[tuple[str, int, int, str]]:
    """Every (labelling, query row, model column, reference kind) cell to grade: the
    candidate's cells under each labelling, Gemma's own where a reference is not itself."""
    cells = []
    for name, (_, ref) in LABELLINGS.items():
        for k, model in enumerate(table.models):
            if model == JUDGE_MODEL and ref == "gemma":
                continue  # Gemma against its own answer: graded alone (below)
            cells += [(name, i, k, ref) for i in range(table.n)]
    return cells


async def _grade_all(table, texts: dict, items: dict, judge_rung, cache: Path, build: str
                     ) -> tuple[dict[tuple[str, str, str], float | None], dict[str, dict]]:
    """The verdict of every cell, from the cache where this build made it before, and each
    labelling's judge failures by kind (this run's calls only)."""
    done: dict[tuple[str, str, str], float | None] = {}
    if cache.exists():
        for line in cache.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["build"] == build:
                done[(entry["labelling"], entry["query_id"], entry["model"])] = entry["quality"]
    judges = {name: Judge(judge_rung, reference="gemma" if ref else None, mode=mode)
              for name, (mode, ref) in LABELLINGS.items()}
    gemma = table.index(JUDGE_MODEL)
    gate = asyncio.Semaphore(1)  # the model in process answers one call at a time

    async def one(name: str, i: int, k: int, ref: str | None) -> None:
        qid, model = str(table.query_ids[i]), table.models[k]
        if (name, qid, model) in done:
            return
        answer, text = table.extra["answers"][i, k], texts[(qid, model)]
        reference = reference_text = None
        if ref == "gemma":
            reference, reference_text = (table.extra["answers"][i, gemma],
                                         texts[(qid, JUDGE_MODEL)])
        elif ref == "truth":
            reference = reference_text = str(items[qid].reference)
        async with gate:  # the judge's timeout counts from its call, not from the queue
            verdict = await judges[name].grade(items[qid].prompt, answer, reference,
                                               answer_text=text, reference_text=reference_text)
        done[(name, qid, model)] = verdict.quality
        if verdict.quality is None:
            return  # a failure is asked again on a rerun, never cached
        with cache.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"labelling": name, "query_id": qid, "model": model,
                                "quality": verdict.quality, "build": build}) + "\n")

    await asyncio.gather(*(one(*cell) for cell in _cells(table, items)))
    return done, {name: dict(judge.failures) for name, judge in judges.items()}


def _labels(table, verdicts: dict, name: str) -> np.ndarray:
    """(n, k) labels of one labelling, NaN where it gave none; Gemma's own cells, where
    the labelling's reference is Gemma itself, come from Gemma alone (as in shadow runs)."""
    out = np.full((table.n, table.k), np.nan)
    for i, qid in enumerate(map(str, table.query_ids)):
        for k, model in enumerate(table.models):
            key = (name, qid, model)
            if key not in verdicts:
                key = ("Gemma alone", qid, model)
            value = verdicts.get(key)
            out[i, k] = np.nan if value is None else value
    return out


def _agreement_stats(labels: np.ndarray, truth: np.ndarray) -> dict:
    """How a labelling's labels (soft, NaN = none) match the true 0/1 grades."""
    given = ~np.isnan(labels)
    soft, true = labels[given], truth[given]
    wrong = ((soft >= 0.5) != (true >= 0.5)).astype(float)
    resamples = Resamples.draw(len(wrong), N_RESAMPLES, seed=0)
    auroc = (float(roc_auc_score(true >= 0.5, soft))
             if len(set(true >= 0.5)) == 2 and len(set(soft)) > 1 else None)
    return {"labelled": int(given.sum()), "cells": int(labels.size),
            "error": mean_interval(resamples, wrong), "auroc": auroc,
            "mean_label": float(soft.mean()), "true_rate": float(true.mean())}


def run_embedded(out: Path, limit: int | None = None) -> dict:
    """Grade every cell of the shipped free-text log (the first `limit` questions of each
    split, for a quick check) with each labelling, compare with the true grades, and fit the
    default policy on the shadow rule's train labels."""
    from ladder.backends.build import llama_build
    from ladder.fit import fit_policy
    from ladder.rung import rungs_from_config
    from ladder.runlog import load_runlog
    from ladder.server.default import (
        LAMBDA,
        POLICY,
        free_text_items,
        load_table,
        models_config,
        shipped_log,
    )

    table = load_table()
    if limit is not None:
        keep = np.zeros(table.n, dtype=bool)
        for split in ("train", "test"):
            keep[np.flatnonzero(table.split == split)[:limit]] = True
        table = table.rows(keep)
    items = {item.id: item for item in free_text_items()}
    df = load_runlog(shipped_log())
    texts = {(q, m): t for q, m, t in zip(df["query_id"], df["model"], df["text"], strict=True)}
    answers = np.full((table.n, table.k), None, dtype=object)
    lookup = {(q, m): a for q, m, a in zip(df["query_id"], df["model"], df["answer"],
                                           strict=True)}
    for i, qid in enumerate(table.query_ids):
        for k, model in enumerate(table.models):
            answer = lookup.get((qid, model))
            answers[i, k] = answer if isinstance(answer, str) else None
    table = replace(table, extra={**table.extra, "answers": answers})
    rung = rungs_from_config(models_config(), [JUDGE_MODEL])[JUDGE_MODEL]
    build = llama_build().describe()
    cache = out / "embedded-verdicts.jsonl"
    out.mkdir(parents=True, exist_ok=True)

    async def grade() -> tuple[dict, dict]:
        try:
            return await _grade_all(table, texts, items, rung, cache, build)
        finally:
            await rung.backend.aclose()

    verdicts, failures = asyncio.run(grade())
    candidate = table.index(CANDIDATE)
    labellings = {}
    for name in LABELLINGS:
        labels = _labels(table, verdicts, name)
        labellings[name] = {"candidate": _agreement_stats(labels[:, candidate],
                                                          table.quality[:, candidate]),
                            "all": _agreement_stats(labels.ravel(), table.quality.ravel()),
                            "failures": failures[name]}
    train_mask, test_mask = table.split == "train", table.split == "test"
    train, test = table.rows(train_mask), table.rows(test_mask)
    judged = replace(train, quality=_labels(table, verdicts, SHADOW)[train_mask])
    true_fit = fit_policy(train, POLICY, LAMBDA).replay(test)
    judge_fit = fit_policy(judged, POLICY, LAMBDA).replay(test)
    resamples = Resamples.draw(test.n, N_RESAMPLES, seed=0)
    fits = {name: {"quality": mean_interval(resamples, o.quality),
                   "cost": float(o.cost.mean())}
            for name, o in (("true labels", true_fit), ("shadow labels", judge_fit))}
    singles = {m: {"quality": mean_interval(resamples, test.quality[:, k]),
                   "cost": float(test.cost[:, k].mean())} for k, m in enumerate(test.models)}
    return {"build": build, "n": table.n, "n_train": train.n, "n_test": test.n,
            "labellings": labellings, "fits": fits, "singles": singles,
            "difference": paired_mean_interval(resamples, judge_fit.quality,
                                               true_fit.quality),
            "train_labelled": float(np.mean(~np.isnan(judged.quality)))}


def _interval(x: dict, digits: int = 3) -> str:
    return f"{x['point']:.{digits}f} [{x['low']:.{digits}f}, {x['high']:.{digits}f}]"


def render_embedded(result: dict, out: Path, page: Path) -> str:
    """The embedded models' part of the judge section."""
    rows = []
    for name, stats in result["labellings"].items():
        c, a = stats["candidate"], stats["all"]
        auroc = "—" if c["auroc"] is None else f"{c['auroc']:.3f}"
        rows.append([name, f"{c['labelled']}/{c['cells']}", _interval(c["error"]), auroc,
                     f"{c['mean_label']:.3f} / {c['true_rate']:.3f}", _interval(a["error"]),
                     f"{a['labelled']}/{a['cells']}"])
    table = markdown_table(["labelling", "SmolLM2 cells labelled", "SmolLM2 label error "
                            "(90%)", "AUROC of the soft label", "SmolLM2 mean label / "
                            "true share right", "both models: error", "both: labelled"], rows)
    fits = [[name, _interval(f["quality"]), f"{f['cost']:.3g}"]
            for name, f in (*result["fits"].items(),
                            *((f"{m} alone", s) for m, s in result["singles"].items()))]
    d = result["difference"]
    cache = relative(out / "embedded-verdicts.jsonl", page)
    failed = "; ".join(f"{name}: " + ", ".join(f"{k} {n}" for k, n in stats["failures"].items())
                       for name, stats in result["labellings"].items() if stats["failures"])
    return "\n".join([
        f"**The embedded models** ({result['n']} built-in questions asked as free text; "
        f"the judge is Gemma-3-270M in process, {result['build']}; verdicts cached in "
        f"`{cache}`, which a rerun reads and the repository does not keep). Label error = "
        "share of labelled cells whose label (≥ 0.5) differs from the true grade; AUROC "
        "says how well the soft label ranks right above wrong answers (0.5: not at all).",
        "", table, "",
        f"Judge failures (cells left unlabelled): {failed or 'none'}.", "",
        f"`ladder-balanced` (auto at the default λ) fitted on the train half's labels from "
        f"the shadow runs' rule ({result['train_labelled']:.0%} of train cells labelled), "
        f"replayed on the {result['n_test']} test questions with their true grades:", "",
        markdown_table(["fitted on", "test accuracy (90%)", "mean cost"], fits), "",
        f"Shadow-labelled minus true-labelled test accuracy: {d['point']:+.3f}, 90% paired "
        f"interval [{d['low']:+.3f}, {d['high']:+.3f}].",
    ])
