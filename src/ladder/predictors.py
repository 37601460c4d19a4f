"""Quality predictors: E[quality | signals after a stage], as scikit-learn estimators.

Three model families (logistic regression, the seeds' one-hidden-layer MLP of 32
units, gradient-boosted trees) share one wrapper that imputes missing signals
with indicators, standardises, and calibrates probabilities with isotonic
regression fitted on out-of-fold scores. The out-of-fold predictions are kept
(`oof_`) so the DP cascade can compute honest continuation targets on the
training split without reusing in-sample fits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

KINDS = ("logistic", "mlp", "gbt")


@dataclass(frozen=True)
class CompiledLinear:
    """An impute → indicator → standardise → linear pipeline as plain numpy, with the
    scaling folded into the weights, so one decision costs microseconds instead of
    scikit-learn's per-call validation."""

    fill: np.ndarray
    weights: np.ndarray  # per input feature, divided by its scale
    indicator: np.ndarray  # features with a missing-indicator column
    indicator_weights: np.ndarray
    intercept: float  # with the scaler's centring folded in

    def decision(self, X: np.ndarray) -> np.ndarray:
        missing = np.isnan(X)
        out = np.where(missing, self.fill, X) @ self.weights + self.intercept
        if len(self.indicator):
            out += missing[:, self.indicator] @ self.indicator_weights
        return out


def compile_linear(pipeline: Pipeline) -> CompiledLinear | None:
    """The numpy form of a fitted imputer/scaler/linear-model pipeline; None for other heads."""
    imputer, scaler, head = (step for _, step in pipeline.steps)
    if not hasattr(head, "coef_"):
        return None
    indicator = imputer.indicator_.features_ if imputer.indicator_ is not None else np.array([])
    folded = np.ravel(head.coef_) / scaler.scale_
    d = len(imputer.statistics_)
    return CompiledLinear(
        fill=imputer.statistics_.astype(float),
        weights=folded[:d],
        indicator=np.asarray(indicator, dtype=int),
        indicator_weights=folded[d:],
        intercept=float(np.ravel(head.intercept_)[0] - scaler.mean_ @ folded),
    )


def _base_model(kind: str, random_state: int) -> BaseEstimator:
    if kind == "logistic":
        # strong L2: ~300 training queries, up to ~100 features on a long chain. C=0.01 had the
        # best mean out-of-fold AUROC on the Zellinger *train* splits (C from 1 down to 0.01).
        return LogisticRegression(C=0.01, max_iter=1000)
    if kind == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=(32,), alpha=1e-2, max_iter=500, early_stopping=False,
            random_state=random_state,
        )
    if kind == "gbt":
        return HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_depth=3, min_samples_leaf=20,
            random_state=random_state,
        )
    raise ValueError(f"unknown predictor kind '{kind}'; choose one of {', '.join(KINDS)}")


def _binary_targets(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional qualities become two weighted rows (label 1 with weight q, 0 with 1 − q)."""
    if np.all((y == 0) | (y == 1)):
        return X, y.astype(int), np.ones(len(y))
    X2 = np.vstack([X, X])
    labels = np.concatenate([np.ones(len(y), int), np.zeros(len(y), int)])
    weights = np.concatenate([y, 1 - y])
    keep = weights > 0
    return X2[keep], labels[keep], weights[keep]


def _fit_pipeline(pipeline: Pipeline, X: np.ndarray, y: np.ndarray) -> Pipeline | float:
    """Fit on (possibly fractional) targets; a constant when only one label occurs."""
    Xb, labels, weights = _binary_targets(X, y)
    if len(np.unique(labels)) < 2:
        return float(np.average(labels, weights=weights))
    step = pipeline.steps[-1][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(Xb, labels, **{f"{step}__sample_weight": weights})
    return pipeline


def _scores(model: Pipeline | float, X: np.ndarray) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(X), model)
    return model.predict_proba(X)[:, 1]


class QualityPredictor(BaseEstimator):
    """Predicts a stage's expected quality from the signals seen so far.

    kind: 'logistic', 'mlp' (one hidden layer of 32, as in the seeds) or 'gbt'.
    calibrate: fit an isotonic map on out-of-fold scores (recommended for mlp/gbt).
    """

    def __init__(self, kind: str = "logistic", calibrate: bool = True, n_folds: int = 5,
                 random_state: int = 0):
        self.kind = kind
        self.calibrate = calibrate
        self.n_folds = n_folds
        self.random_state = random_state

    def _pipeline(self) -> Pipeline:
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            _base_model(self.kind, self.random_state),
        )

    def fit(self, X: np.ndarray, y: np.ndarray) -> QualityPredictor:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self.__dict__.pop("_compiled", None)  # a refit must not predict with the old model
        template = self._pipeline()
        raw_oof = np.empty(len(y))
        strata = (y >= 0.5).astype(int)
        n_folds = min(self.n_folds, int(np.bincount(strata, minlength=2).min()))
        if n_folds >= 2:
            folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
            for train, held in folds.split(X, strata):
                raw_oof[held] = _scores(_fit_pipeline(clone(template), X[train], y[train]), X[held])
        else:
            raw_oof[:] = y.mean()
        self.model_ = _fit_pipeline(clone(template), X, y)
        self.calibrator_ = None
        if self.calibrate and n_folds >= 2:
            self.calibrator_ = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
            self.calibrator_.fit(raw_oof, y)
            self.oof_ = self.calibrator_.predict(raw_oof)
        else:
            self.oof_ = raw_oof
        self.n_features_in_ = X.shape[1]
        return self

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_compiled", None)  # derived from model_; rebuilt on first predict
        return state

    @cached_property
    def _compiled(self) -> CompiledLinear | None:
        return None if isinstance(self.model_, float) else compile_linear(self.model_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Expected quality in [0, 1] for each row."""
        X = np.asarray(X, dtype=float)
        if self._compiled is not None:
            scores = 1.0 / (1.0 + np.exp(-self._compiled.decision(X)))
        else:
            scores = _scores(self.model_, X)
        if self.calibrator_ is not None:
            iso = self.calibrator_
            return np.interp(scores, iso.X_thresholds_, iso.y_thresholds_)
        return scores
