"""Train/test splits: the log's own `split` column, or a seeded random split."""

from __future__ import annotations

import numpy as np

from ladder.runlog.schema import RunLogError
from ladder.runlog.table import QueryTable


def split_table(
    table: QueryTable, train_frac: float | None = None, seed: int = 0
) -> tuple[QueryTable, QueryTable, str]:
    """(train, test, how). The log's split column wins unless `train_frac` is given.

    Unless the caller fixed the model order, both tables take the ladder order of ascending
    mean cost on the train rows: which model is cheaper is a choice made on train.
    """
    train_rows, test_rows, how = _masks(table, train_frac, seed)
    train = table.rows(train_rows).by_cost()
    return train, table.rows(test_rows).by_cost(train), how


def _masks(table: QueryTable, train_frac: float | None,
           seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Boolean masks of the train and the test queries, and how they were drawn."""
    if train_frac is None and table.split is not None:
        labels = set(table.split)
        if {"train", "test"} <= labels:
            return (table.split == "train", table.split == "test",
                    "the log's split column (train → test)")
    frac = 0.5 if train_frac is None else train_frac
    if not 0 < frac < 1:
        raise RunLogError(f"--train-frac must be between 0 and 1, got {frac}")
    order = np.random.default_rng(seed).permutation(table.n)
    cut = round(frac * table.n)
    if cut < 2 or table.n - cut < 2:
        raise RunLogError(
            f"{table.n} queries are too few to split {frac:.0%} / {1 - frac:.0%}", "query_id"
        )
    mask = np.zeros(table.n, bool)
    mask[order[:cut]] = True
    return mask, ~mask, f"random {frac:.0%} / {1 - frac:.0%}, seed {seed}"


def pooled_training(log: QueryTable, train: QueryTable, benchmark: str | None) -> QueryTable:
    """The training queries to fit pooled predictors on: `train`'s, plus every other
    benchmark's queries outside any test split (theory.md §9). Never a test row."""
    if log.benchmark is None or len(set(log.benchmark)) < 2:
        raise RunLogError("--pool needs a log with several benchmarks (its 'benchmark' "
                          "column) to pool across", "benchmark")
    mine = np.isin(log.query_ids, train.query_ids)
    others = log.benchmark != benchmark if benchmark is not None else np.zeros(log.n, bool)
    if log.split is not None:
        others &= log.split != "test"
    return log.rows(mine | others).select_models(train.models)
