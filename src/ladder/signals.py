"""Features available after each rung of a cascade (theory.md §1).

After stage i of a chain the policy has seen the prompt and every output of the
stages run so far: their confidences and log-probabilities, output lengths,
self-consistency of samples, and whether the stages' answers agree. Missing
signals stay NaN here; predictors impute them and add missing-indicators.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from ladder.runlog.table import QueryTable

PER_STAGE = (
    "confidence", "log_confidence", "log_doubt",
    "logprob_mean", "logprob_min", "tokens_out", "sample_share",
)


def _agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1.0 where two answer codes match, 0.0 where they differ, NaN where either is missing."""
    return np.where((a < 0) | (b < 0), np.nan, (a == b).astype(float))


def _majority_features(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an (n, s) matrix of answer codes: share of stages agreeing with the majority
    answer, whether the last stage is in the majority, number of distinct answers."""
    present = codes >= 0
    same = (codes[:, :, None] == codes[:, None, :]) & present[:, :, None] & present[:, None, :]
    support = same.sum(axis=2)
    top = support.max(axis=1)
    s = codes.shape[1]
    any_present = present.any(axis=1)
    share = np.where(any_present, top / s, np.nan)
    last_in_majority = np.where(present[:, -1], (support[:, -1] == top).astype(float), np.nan)
    earlier_same = np.tril(np.ones((s, s), dtype=bool), k=-1)[None] & same
    first_of_kind = present & ~earlier_same.any(axis=2)
    distinct = np.where(any_present, first_of_kind.sum(axis=1).astype(float), np.nan)
    return share, last_in_majority, distinct


def feature_names(table: QueryTable, chain: Sequence[int], stage: int) -> list[str]:
    """Names of the columns `stage_features` returns, for reports."""
    names = ["log_prompt_chars"]
    for j in chain[: stage + 1]:
        names += [f"{table.models[j]}:{s}" for s in PER_STAGE]
    if table.answers is not None:
        run = chain[: stage + 1]
        names += [f"agree:{table.models[a]}~{table.models[b]}" for a, b in combinations(run, 2)]
        if len(run) > 1:
            names += ["majority_share", "last_in_majority", "distinct_answers"]
    return names


def stage_features(table: QueryTable, chain: Sequence[int], stage: int) -> np.ndarray:
    """(n, d) features after `stage` (0-based position in `chain`, model indices of `table`)."""
    run = list(chain[: stage + 1])
    prompt = (
        np.log1p(table.prompt_len) if table.prompt_len is not None else np.full(table.n, np.nan)
    )
    columns = [prompt]
    for j in run:
        confidence = table.signals["confidence"][:, j]
        columns.append(confidence)
        # log-scale views of both ends: how unlikely the answer is, how far from certain
        columns.append(np.log(np.clip(confidence, 1e-6, None)))
        columns.append(np.log(np.clip(1.0 - confidence, 1e-6, None)))
        columns.append(table.signals["logprob_mean"][:, j])
        columns.append(table.signals["logprob_min"][:, j])
        columns.append(np.log1p(table.signals["tokens_out"][:, j]))
        share = table.sample_share[:, j] if table.sample_share is not None else None
        columns.append(share if share is not None else np.full(table.n, np.nan))
    if table.answers is not None:
        answers = table.answers[:, run]
        for a, b in combinations(range(len(run)), 2):
            columns.append(_agree(answers[:, a], answers[:, b]))
        if len(run) > 1:
            columns.extend(_majority_features(answers))
    return np.column_stack(columns).astype(float)
