"""What every policy produces when replayed on a log, and the cascade mechanics they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.model_selection import KFold

from ladder.runlog.table import QueryTable


@dataclass(frozen=True)
class Outcome:
    """Per-query result of replaying a policy on a QueryTable.

    chosen: index (into table.models) of the model whose answer is returned.
    last_run: index of the last (most expensive) model the policy ran; the stage mix.
    """

    chosen: np.ndarray
    last_run: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean())

    @property
    def mean_quality(self) -> float:
        return float(self.quality.mean())

    def objective(self, lam: float) -> float:
        """Empirical J_λ = E[q] − λ·E[C] (theory.md §2)."""
        return self.mean_quality - lam * self.mean_cost

    def stage_mix(self, models: Sequence[str]) -> dict[str, float]:
        """Share of queries whose last model run was each model."""
        counts = np.bincount(self.last_run, minlength=len(models)) / len(self.last_run)
        return {m: float(c) for m, c in zip(models, counts, strict=True)}


def resolve_chain(table: QueryTable, chain: Sequence[str] | None) -> list[int]:
    """Model indices of a chain given by names; the whole ladder when None."""
    if chain is None:
        return list(range(table.k))
    return [table.index(m) for m in chain]


def run_cascade(
    table: QueryTable, chain: Sequence[int], stop: np.ndarray, returned: np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> Outcome:
    """Replay a cascade from its per-stage stop decisions.

    stop: (n, r) bool, True where the policy would stop after that stage; the last
    stage always stops. returned: (n, r) chain positions of the answer returned when
    stopping at each stage (best-so-far, vote); None returns the stage's own answer.
    quality: (n, k) values to score the returned answers with (default: the table's
    labels; tuning passes its plug-in targets). Cost is every stage run, the stopping
    stage included.
    """
    chain = np.asarray(chain)
    n, _r = stop.shape
    stop = stop.copy()
    stop[:, -1] = True
    stage = stop.argmax(axis=1)
    rows = np.arange(n)
    position = stage if returned is None else returned[rows, stage]
    chosen = chain[position]
    paid = np.cumsum(table.cost[:, chain], axis=1)[rows, stage]
    return Outcome(
        chosen=chosen,
        last_run=chain[stage],
        quality=(table.quality if quality is None else quality)[rows, chosen],
        cost=paid,
    )


def best_model(qualities: ArrayLike, costs: ArrayLike) -> int:
    """Index of the most accurate model: highest mean quality, ties to the cheaper, then to
    the earlier. An exact tie-break, so it holds at any cost scale (a `q − ε·c` penalty is
    below float resolution when costs are ~1e-6 $)."""
    q, c = np.asarray(qualities, dtype=float), np.asarray(costs, dtype=float)
    return int(np.lexsort((np.arange(q.size), c, -q))[0])


def single_model(table: QueryTable, model: int) -> Outcome:
    """Every query answered by one model."""
    index = np.full(table.n, model)
    return Outcome(index, index, table.quality[:, model], table.cost[:, model])


def held_out_folds(n: int, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded (fit rows, held-out rows) splits used to judge a fit on data it did not see,
    so that a search over chains does not reward in-sample fitting."""
    folds = KFold(min(n_folds, n), shuffle=True, random_state=0)
    return list(folds.split(np.zeros(n)))
