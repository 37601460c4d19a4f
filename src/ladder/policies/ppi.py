"""Prediction-powered tests of a mean quality when most labels come from a judge.

A judge (agreement with a reference rung, or a judge model; `ladder.judge`) labels every
calibration query, and a person labels a small random share of them as well. Learn-then-
Test on the judge's labels alone certifies the judge's view of quality: an optimistic
judge breaks the promise. Prediction-powered inference (Angelopoulos et al. 2023; PPI++,
Angelopoulos, Duchi & Zrnic 2023) estimates the mean from the judge's view f on the N
queries nobody labelled and corrects its bias on the n a person did:

    θ̂ = λ·mean_N(f) + mean_n(y − λ·f).

The human-labelled queries are a random subset, so E[θ̂] = E[y] for any fixed λ. λ = 0 is
the classical estimate from the n human labels alone, λ = 1 plain PPI; PPI++ takes the
variance-minimising λ = Cov(y, f) / ((1 + n/N)·Var(f)), clipped to [0, 1] so a judge
that tracks the truth badly is never trusted beyond the human labels. The p-value for
H: E[y] < level is one-sided normal on the CLT standard error, so it is asymptotic, as
`t_cost_p_value` is: with few human labels on which the judge happens never to err, the
rectifier's variance is estimated as 0 and the test is overconfident.

That is why an operating point's test only widens by default (`HumanAudit.widen`): a
point must pass both the test on the labels as they are and the prediction-powered one,
p = max of the two (valid when either is). The correction then guards against a judge
that is too kind and never relaxes one that is too strict. On the Zellinger logs, with
~24 human-labelled queries, the prediction-powered test alone relaxed the strict
reference judge and broke the quality promise on test (the judge experiment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ladder.runlog.schema import LABEL_SOURCES
from ladder.runlog.table import QueryTable

__all__ = ["HumanAudit", "human_audit", "human_rows", "judge_labelled", "judge_view",
           "ppi_mean", "ppi_p_value"]

HUMAN, REFERENCE, JUDGE = LABEL_SOURCES
MIN_HUMAN = 2  # human-labelled queries needed for a standard error


def ppi_mean(unlabelled: ArrayLike, proxy: ArrayLike, truth: ArrayLike
             ) -> tuple[float, float, float]:
    """(θ̂, its standard error, λ) from the judge's view on the unlabelled queries and the
    judge's view and the truth on the labelled ones (see the module docstring)."""
    f_u = np.asarray(unlabelled, dtype=np.float64).ravel()
    f = np.asarray(proxy, dtype=np.float64).ravel()
    y = np.asarray(truth, dtype=np.float64).ravel()
    n, big_n = y.size, f_u.size
    if f.size != n or n < MIN_HUMAN:
        raise ValueError(f"ppi_mean: need at least {MIN_HUMAN} labelled queries with a proxy "
                         f"and a truth each, got {f.size} and {n}")
    lam = 0.0
    if big_n >= 2:
        var_f = float(np.concatenate([f_u, f]).var(ddof=1))
        if var_f > 0:
            cov = float(np.cov(y, f, ddof=1)[0, 1])
            lam = min(max(cov / ((1.0 + n / big_n) * var_f), 0.0), 1.0)
    rectifier = y - lam * f
    theta = float(rectifier.mean()) + (lam * float(f_u.mean()) if lam else 0.0)
    var = float(rectifier.var(ddof=1)) / n
    if lam:
        var += lam ** 2 * float(f_u.var(ddof=1)) / big_n
    return theta, math.sqrt(var), lam


def ppi_p_value(unlabelled: ArrayLike, proxy: ArrayLike, truth: ArrayLike,
                level: float) -> float:
    """One-sided PPI++ p-value for H: E[y] < level (asymptotic: normal on the CLT error)."""
    theta, se, _ = ppi_mean(unlabelled, proxy, truth)
    if se == 0.0:
        return 0.0 if theta >= level else 1.0
    return float(stats.norm.sf((theta - level) / se))


# --- a table's labels: whose they are -----------------------------------------------------


def _human_cells(table: QueryTable) -> NDArray[np.bool_]:
    """Labelled cells whose label is a person's (a log that names no source: every one)."""
    labelled = ~np.isnan(table.quality)
    if table.label_source is None:
        return labelled
    return labelled & np.isin(table.label_source, (None, HUMAN))


def judge_labelled(table: QueryTable) -> bool:
    """Whether some label of the table comes from a reference rung or a judge model."""
    return table.label_source is not None and bool(
        np.isin(table.label_source, (REFERENCE, JUDGE)).any())


def human_rows(table: QueryTable) -> NDArray[np.bool_]:
    """Queries a person labelled on every model and the judge looked at too (its label
    kept in `judge_quality`): where the judge's error shows."""
    if table.judge_quality is None:
        return np.zeros(table.n, dtype=bool)
    return _human_cells(table).all(axis=1) & ~np.isnan(table.judge_quality).all(axis=1)


def judge_view(table: QueryTable, predicted: NDArray[np.float64]) -> NDArray[np.float64]:
    """(n, k) quality as the judge alone sees it, one rule on every query: its label (in
    `judge_quality`, or the cell's label when the judge made it), else the predicted
    quality `predicted` (out of fold), never a person's label."""
    judged = ~np.isnan(table.quality) & ~_human_cells(table)
    view = np.where(judged, table.quality, predicted)
    if table.judge_quality is not None:
        view = np.where(np.isnan(table.judge_quality), view, table.judge_quality)
    return view


@dataclass(frozen=True, eq=False)
class HumanAudit:
    """The candidates of an operating-point search seen both ways: `proxy` (N, P), each
    candidate's per-query quality on every calibration query by the judge's view, and
    `truth` (n, P) by the person's labels on the human-labelled queries `rows`; likewise
    the single models (the references of a relative target). `widen`: the correction
    only widens a bound (see the module docstring)."""

    rows: NDArray[np.intp]
    proxy: NDArray[np.float64]
    truth: NDArray[np.float64]
    reference_proxy: NDArray[np.float64]
    reference_truth: NDArray[np.float64]
    widen: bool = True  # False: the prediction-powered p-value alone decides

    @property
    def n(self) -> int:
        return int(self.rows.size)


def human_audit(table: QueryTable, chosen: Sequence[NDArray[np.intp]],
                predicted: NDArray[np.float64]) -> HumanAudit | None:
    """The audit of candidates answering with model `chosen[j][i]` on calibration query i,
    when the table's labels are partly a judge's and enough queries carry a person's as
    well; None otherwise (the labels are then read as they are)."""
    rows = np.flatnonzero(human_rows(table))
    if not judge_labelled(table) or rows.size < MIN_HUMAN:
        return None
    view, truth = judge_view(table, predicted), table.quality[rows]
    every = np.arange(table.n)

    def per_candidate(values: NDArray[np.float64], at: NDArray[np.intp]) -> NDArray[np.float64]:
        return np.column_stack([values[np.arange(at.size), c[at]] for c in chosen])

    return HumanAudit(rows, per_candidate(view, every), per_candidate(truth, rows), view, truth)
