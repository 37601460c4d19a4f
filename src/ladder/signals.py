"""Features available after each rung of a cascade (theory.md §1).

After stage i of a chain the policy has seen the prompt and every output of the
stages run so far: their confidences, option margins and entropies, log-probabilities,
output lengths, self-consistency of samples, and whether the stages' answers agree. Missing
signals stay NaN here; predictors impute them and add missing-indicators.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from itertools import combinations

import numpy as np

from ladder.runlog.table import QueryTable

PER_STAGE = (
    "confidence", "log_confidence", "log_doubt",
    "logprob_mean", "logprob_min", "tokens_out", "sample_share", "margin", "entropy",
)
_COPIED = ("logprob_mean", "logprob_min", "margin", "entropy")  # taken as logged
_COPIED_AT = tuple(PER_STAGE.index(name) for name in _COPIED)


@cache
def _pair_masks(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pair indices and the strictly-lower mask for s stages (cached: numpy
    builds them slowly, and a live decision needs them at every rung)."""
    rows, cols = np.triu_indices(s, k=1)
    return rows, cols, np.tril(np.ones((s, s), dtype=bool), k=-1)[None]


def _agreement_features(codes: np.ndarray) -> np.ndarray:
    """For an (n, s) matrix of answer codes: pairwise agreement (1/0, NaN where either is
    missing) in `combinations` order, then — with two or more stages — the share of stages
    agreeing with the majority answer, whether the last stage is in the majority, and the
    number of distinct answers."""
    n, s = codes.shape
    if s < 2:
        return np.empty((n, 0))
    present = codes >= 0
    both = present[:, :, None] & present[:, None, :]
    same = (codes[:, :, None] == codes[:, None, :]) & both
    rows, cols, lower = _pair_masks(s)
    pairs = np.where(both[:, rows, cols], same[:, rows, cols], np.nan)
    support = same.sum(axis=2)
    top = support.max(axis=1)
    any_present = present.any(axis=1)
    share = np.where(any_present, top / s, np.nan)
    last_in_majority = np.where(present[:, -1], support[:, -1] == top, np.nan)
    earlier_same = lower & same
    first_of_kind = present & ~earlier_same.any(axis=2)
    distinct = np.where(any_present, first_of_kind.sum(axis=1), np.nan)
    return np.column_stack([pairs, share, last_in_majority, distinct])


@lru_cache(maxsize=4096)
def _agreement_row(codes: tuple[int, ...]) -> np.ndarray:
    """`_agreement_features` of one query, memoised: a live cascade asks at every rung, and
    one query's answer codes take few patterns (its own codes count up from 0)."""
    return _agreement_features(np.array([codes]))[0]


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
    """(n, d) features after `stage` (0-based position in `chain`, model indices of `table`).

    Built with a handful of whole-block numpy operations written into one preallocated
    array (not one per column) because a live cascade computes it for a single query at
    every rung, where each numpy call's fixed cost dominates."""
    run = list(chain[: stage + 1])
    n, s = table.n, len(run)
    width = len(PER_STAGE) * s
    agreement = 0 if table.answers is None else s * (s - 1) // 2 + (3 if s > 1 else 0)
    out = np.empty((n, 1 + width + agreement))
    out[:, 0] = np.log1p(table.prompt_len) if table.prompt_len is not None else np.nan
    per_stage = np.empty((n, s, len(PER_STAGE)))  # written in place: fewer numpy calls
    confidence = table.signals["confidence"][:, run]
    per_stage[:, :, 0] = confidence
    # log-scale views of both ends: how unlikely the answer is, how far from certain
    np.log(np.maximum(confidence, 1e-6), out=per_stage[:, :, 1])
    np.log(np.maximum(1.0 - confidence, 1e-6), out=per_stage[:, :, 2])
    for position, name in zip(_COPIED_AT, _COPIED, strict=True):
        per_stage[:, :, position] = table.signals[name][:, run]
    np.log1p(table.signals["tokens_out"][:, run], out=per_stage[:, :, 5])
    per_stage[:, :, 6] = table.sample_share[:, run] if table.sample_share is not None else np.nan
    out[:, 1 : 1 + width] = per_stage.reshape(n, width)
    if agreement:
        codes = table.answers[:, run]
        out[:, 1 + width :] = (_agreement_row(tuple(codes[0].tolist())) if n == 1
                               else _agreement_features(codes))
    return out
