"""DP cascade: backward induction with fitted continuation values (theory.md §3).

At stage i the policy compares the value of stopping, max_{j≤i} ĝ_j (or ĝ_i
without best-so-far), with a regression estimate of E[−λ·c_{i+1} + V_{i+1} | h_i].
The regressions are fitted backwards from the last stage on the training split,
as in least-squares Monte Carlo. Targets are either the fitted values of the next
stage ('value', theory.md's fitted value iteration) or the realised value of
following the fitted policy ('realized', Longstaff–Schwartz).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ladder.policies.base import held_out_folds, resolve_chain, run_cascade
from ladder.policies.stages import ChainPolicy, PredictorCache, answer_codes
from ladder.predictors import compile_linear
from ladder.runlog.table import QueryTable
from ladder.signals import stage_features

VALUE_MODELS = ("ridge", "gbt")
TARGETS = ("value", "realized")


def _value_model(kind: str) -> Pipeline:
    if kind == "ridge":
        head = Ridge(alpha=1.0)
    elif kind == "gbt":
        head = HistGradientBoostingRegressor(max_iter=100, max_depth=3, min_samples_leaf=20,
                                             learning_rate=0.05)
    else:
        raise ValueError(f"unknown value model '{kind}'; choose one of {', '.join(VALUE_MODELS)}")
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        head,
    )


def value_basis(features: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Regression inputs after stage i: the signals plus predicted qualities so far,
    their running maximum and its square (a small polynomial basis, as in LSMC)."""
    best = scores.max(axis=1, keepdims=True)
    return np.hstack([features, scores, best, best**2])


class DPCascade(ChainPolicy, BaseEstimator):
    """Optimal-stopping cascade with learned continuation values.

    chain: model names in order (None: the whole ladder); lam: price of one unit of cost;
    best_so_far: stop on (and return) the highest predicted quality seen, not the last;
    value_model: 'ridge' or 'gbt' regressor of continuation values; target: 'value' or
    'realized' regression targets; alpha: weight of the labels in the plug-in target
    (theory.md §9); vote: return the weighted vote of the stages run.
    """

    family = "dp"
    uses_earlier_scores = True

    def __init__(self, chain: Sequence[str] | None = None, lam: float = 0.0,
                 predictor: str = "logistic", value_model: str = "ridge",
                 best_so_far: bool = True, target: str = "value", alpha: float = 1.0,
                 vote: bool = False):
        self.chain = chain
        self.lam = lam
        self.predictor = predictor
        self.value_model = value_model
        self.best_so_far = best_so_far
        self.target = target
        self.alpha = alpha
        self.vote = vote

    def fit(self, table: QueryTable, cache: PredictorCache | None = None) -> DPCascade:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target '{self.target}'; choose one of {', '.join(TARGETS)}")
        chain = resolve_chain(table, self.chain)
        cache = cache or PredictorCache(table, self.predictor)
        scores = cache.scores(table, chain)
        stop_value = np.maximum.accumulate(scores, axis=1) if self.best_so_far else scores
        returned = self.returned_positions(scores, answer_codes(table, chain))
        n, r = scores.shape
        rows = np.arange(n)[:, None]
        positions = np.asarray(chain)[returned]
        realized_stop = cache.targets(table, self.alpha)[rows, positions]
        cost = table.cost[:, chain]
        bases = [value_basis(stage_features(table, chain, i), scores[:, : i + 1])
                 for i in range(r - 1)]
        everyone = np.arange(n)
        self.value_models_ = self._backward(bases, stop_value, realized_stop, cost, everyone)
        self.__dict__.pop("_compiled_values", None)  # rebuilt from the new value models
        self._fit_chain(table, chain, cache)
        # judge the fit on held-out folds so chain selection does not reward in-sample fits
        continuation = np.full((n, r), -np.inf)
        for train_rows, held in held_out_folds(n):
            models = self._backward(bases, stop_value, realized_stop, cost, train_rows)
            for i in range(r - 1):
                continuation[held, i] = models[i].predict(bases[i][held])
        self.held_out_ = run_cascade(table, chain, stop_value >= continuation, returned,
                                     quality=cache.targets(table, 1.0))
        self.train_objective_ = self.held_out_.objective(self.lam)
        return self

    def _backward(self, bases: list[np.ndarray], stop_value: np.ndarray,
                  realized_stop: np.ndarray, cost: np.ndarray,
                  rows: np.ndarray) -> list[Pipeline | None]:
        """Fit the continuation regressions backwards from the last stage on `rows`."""
        r = stop_value.shape[1]
        # value (predicted) and realised value of acting optimally from stage i onwards
        value, realized = stop_value[rows, -1], realized_stop[rows, -1]
        models: list[Pipeline | None] = [None] * r
        for i in range(r - 2, -1, -1):
            future = value if self.target == "value" else realized
            target = future - self.lam * cost[rows, i + 1]
            model = _value_model(self.value_model).fit(bases[i][rows], target)
            models[i] = model
            continuation = model.predict(bases[i][rows])
            stop = stop_value[rows, i] >= continuation
            value = np.where(stop, stop_value[rows, i], continuation)
            realized = np.where(stop, realized_stop[rows, i],
                                realized - self.lam * cost[rows, i + 1])
        return models

    def _continuation(self, stage: int, basis: np.ndarray) -> np.ndarray:
        """The stage's fitted continuation value; ridge models run as plain numpy."""
        if not hasattr(self, "_compiled_values"):
            self._compiled_values = [
                None if m is None else compile_linear(m) for m in self.value_models_
            ]
        compiled = self._compiled_values[stage]
        if compiled is not None:
            return compiled.decision(basis)
        return self.value_models_[stage].predict(basis)

    def _stops(self, stage: int, scores: np.ndarray,
               features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stop_value = scores.max(axis=1) if self.best_so_far else scores[:, -1]
        continuation = self._continuation(stage, value_basis(features, scores))
        return stop_value >= continuation, continuation

    def _answer_position(self, scores: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
        if self.best_so_far and not self.vote:
            return scores.argmax(axis=1)
        return super()._answer_position(scores, codes)
