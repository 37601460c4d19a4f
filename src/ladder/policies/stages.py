"""Per-stage quality predictors of a chain, fitted once per chain prefix and shared.

The features after stage i depend only on the models run so far (the chain's
prefix), so predictors are cached by prefix: a search over many chains and many
λ values fits each prefix once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ladder.predictors import QualityPredictor
from ladder.runlog.table import QueryTable
from ladder.signals import stage_features


class PredictorCache:
    """Quality predictors fitted on one training table, keyed by chain prefix."""

    def __init__(self, train: QueryTable, kind: str = "logistic", random_state: int = 0):
        self.train = train
        self.kind = kind
        self.random_state = random_state
        self._fitted: dict[tuple[int, ...], QualityPredictor] = {}
        self._scores: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self._tables: dict[int, QueryTable] = {}  # keeps scored tables alive so ids stay unique

    def predictor(self, prefix: Sequence[int]) -> QualityPredictor:
        """The predictor of the last model of `prefix` given all of `prefix`'s signals."""
        key = tuple(prefix)
        if key not in self._fitted:
            X = stage_features(self.train, key, len(key) - 1)
            self._fitted[key] = QualityPredictor(self.kind, random_state=self.random_state).fit(
                X, self.train.quality[:, key[-1]]
            )
        return self._fitted[key]

    def scores(self, table: QueryTable, chain: Sequence[int]) -> np.ndarray:
        """(n, r) predicted quality after each stage; out-of-fold on the training table."""
        columns = []
        for i in range(len(chain)):
            key = tuple(chain[: i + 1])
            cache_key = (id(table), key)
            self._tables[id(table)] = table
            if cache_key not in self._scores:
                model = self.predictor(key)
                if table is self.train:
                    self._scores[cache_key] = model.oof_
                else:
                    self._scores[cache_key] = model.predict(stage_features(table, key, i))
            columns.append(self._scores[cache_key])
        return np.column_stack(columns)

    def predictors(self, chain: Sequence[int]) -> list[QualityPredictor]:
        return [self.predictor(chain[: i + 1]) for i in range(len(chain))]


def chain_scores(
    table: QueryTable, chain: Sequence[int], predictors: Sequence[QualityPredictor]
) -> np.ndarray:
    """(n, r) predicted quality after each stage of a fitted chain."""
    return np.column_stack(
        [p.predict(stage_features(table, chain, i)) for i, p in enumerate(predictors)]
    )


def replay_scores(
    table: QueryTable,
    chain: Sequence[int],
    predictors: Sequence[QualityPredictor],
    cache: PredictorCache | None = None,
) -> np.ndarray:
    """Scores of a fitted chain on a log, from the shared cache when one is given."""
    if cache is not None:
        return cache.scores(table, chain)
    return chain_scores(table, chain, predictors)
