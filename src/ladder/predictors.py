"""Quality predictors: E[quality | signals after a stage], as scikit-learn estimators.

Three model families (logistic regression, the seeds' one-hidden-layer MLP of 32
units, gradient-boosted trees) share one wrapper that imputes missing signals
with indicators, standardises, and calibrates probabilities on out-of-fold
scores. The out-of-fold predictions are kept (`oof_`) so that tuning on the
training split never scores a query with a model that saw its label; the
calibration is cross-fitted too (theory.md §9: a calibrator fitted on
out-of-fold scores and applied to the same rows makes them in-sample again).

Rows without a label (quality NaN: served traffic before feedback) are not fitted
on, but get predictions, so tuning can use their signals. With task labels
(`groups`), the logistic predictor pools the tasks (theory.md §9): shared
per-model effects plus task terms that a stronger penalty shrinks towards them.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

KINDS = ("logistic", "mlp", "gbt")
CALIBRATIONS = ("sigmoid", "isotonic")
UNKNOWN_TASK = -1  # a task the predictor was not fitted on: only the shared effects apply


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
    """The numpy form of a fitted imputer/scaler/linear-model pipeline; None for others."""
    if len(pipeline.steps) != 3:
        return None
    imputer, scaler, head = (step for _, step in pipeline.steps)
    if not (isinstance(imputer, SimpleImputer) and hasattr(head, "coef_")):
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


class TaskInteractions(TransformerMixin, BaseEstimator):
    """[signals, task] → [signals, s·onehot(task), s·onehot(task) ⊙ signals].

    The input's last column is the task code (UNKNOWN_TASK: none). Scaling the task
    columns by `strength` s < 1 multiplies their ridge penalty by 1/s², so the per-task
    intercepts and slopes shrink towards the shared ones (partial pooling)."""

    def __init__(self, n_tasks: int = 1, strength: float = 1.0):
        self.n_tasks = n_tasks
        self.strength = strength

    def fit(self, X: np.ndarray, y: object = None) -> TaskInteractions:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        signals, task = X[:, :-1], X[:, -1].astype(int)
        onehot = np.zeros((len(X), self.n_tasks))
        known = task >= 0
        onehot[np.flatnonzero(known), task[known]] = self.strength
        interactions = (onehot[:, :, None] * signals[:, None, :]).reshape(len(X), -1)
        return np.hstack([signals, onehot, interactions])


def _base_model(kind: str, random_state: int) -> BaseEstimator:
    if kind == "logistic":
        # L2 for ~300 training queries and up to ~100 features on a long chain. With the
        # Platt calibration cross-fitted, C=0.1 had the least mean out-of-fold log-loss over
        # 96 chain prefixes (1-3 stages) of the four Zellinger *train* splits (C from 0.003
        # to 1; 1-stage prefixes preferred 0.3-1, 3-stage ones 0.03; 0.01 was 1-2% worse).
        return LogisticRegression(C=0.1, max_iter=1000)
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray) -> BaseEstimator | None:
    """A monotone map from raw scores to calibrated probabilities; None when y is constant."""
    if np.ptp(y) == 0:
        return None
    if method == "isotonic":
        return IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y)
    # Platt scaling on the logit: two parameters, so ~300 rows give a smooth map (isotonic
    # collapses such samples to a handful of distinct values)
    Xb, labels, weights = _binary_targets(_logit(raw)[:, None], y)
    return LogisticRegression(C=1e4).fit(Xb, labels, sample_weight=weights)


def _apply_calibrator(calibrator: BaseEstimator | None, raw: np.ndarray) -> np.ndarray:
    if calibrator is None:
        return raw
    if isinstance(calibrator, IsotonicRegression):
        return np.interp(raw, calibrator.X_thresholds_, calibrator.y_thresholds_)
    return expit(calibrator.coef_[0, 0] * _logit(raw) + calibrator.intercept_[0])


class QualityPredictor(BaseEstimator):
    """Predicts a stage's expected quality from the signals seen so far.

    kind: 'logistic', 'mlp' (one hidden layer of 32, as in the seeds) or 'gbt'.
    calibration: 'sigmoid' (Platt), 'isotonic' or None; fitted on out-of-fold scores and
    cross-fitted for `oof_`. pool_strength: with task labels, the scale of the task terms
    (smaller = more pooling; logistic only).
    """

    def __init__(self, kind: str = "logistic", calibration: str | None = "sigmoid",
                 n_folds: int = 5, random_state: int = 0, pool_strength: float = 1.0):
        self.kind = kind
        self.calibration = calibration
        self.n_folds = n_folds
        self.random_state = random_state
        self.pool_strength = pool_strength

    def _pipeline(self, n_features: int) -> Pipeline:
        signals = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        head = _base_model(self.kind, self.random_state)
        if self.tasks_ is None:
            return make_pipeline(*signals.named_steps.values(), head)
        columns = ColumnTransformer([("signals", signals, slice(0, n_features)),
                                     ("task", "passthrough", [n_features])])
        return make_pipeline(columns, TaskInteractions(len(self.tasks_), self.pool_strength),
                             head)

    def _inputs(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        """X, with the task code appended when the predictor pools tasks."""
        if self.tasks_ is None:
            return X
        codes = np.full(len(X), UNKNOWN_TASK, dtype=float)
        if groups is not None:
            index = {t: i for i, t in enumerate(self.tasks_)}
            codes = np.array([index.get(g, UNKNOWN_TASK) for g in groups], dtype=float)
        return np.column_stack([X, codes])

    def fit(self, X: np.ndarray, y: np.ndarray,
            groups: np.ndarray | None = None) -> QualityPredictor:
        """Fit on the rows whose quality is known; `groups` (task names) turns pooling on.

        Boosted trees fit on one OpenMP thread: on a few hundred rows the threads cost
        ~50× more than they save on 2 cores."""
        with threadpool_limits(1, "openmp") if self.kind == "gbt" else nullcontext():
            return self._fit(X, y, groups)

    def _fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> QualityPredictor:
        if self.calibration not in (*CALIBRATIONS, None):
            raise ValueError(f"unknown calibration '{self.calibration}'; choose one of "
                             f"{', '.join(CALIBRATIONS)} or None")
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self.__dict__.pop("_compiled", None)  # a refit must not predict with the old model
        labelled = np.flatnonzero(~np.isnan(y))
        if len(labelled) == 0:
            raise ValueError("no labelled rows to fit a quality predictor on")
        tasks = None if groups is None else sorted({str(g) for g in np.asarray(groups)[labelled]})
        self.tasks_ = tuple(tasks) if tasks and len(tasks) > 1 and self.kind == "logistic" \
            else None
        Z = self._inputs(X, groups)
        template = self._pipeline(X.shape[1])
        yl, Zl = y[labelled], Z[labelled]
        strata = (yl >= 0.5).astype(int)
        n_folds = min(self.n_folds, int(np.bincount(strata, minlength=2).min()))
        raw = np.full(len(yl), yl.mean())
        folds = []
        if n_folds >= 2:
            folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
                         .split(Zl, strata))
            for train, held in folds:
                raw[held] = _scores(_fit_pipeline(clone(template), Zl[train], yl[train]), Zl[held])
        self.model_ = _fit_pipeline(clone(template), Zl, yl)
        calibrate = self.calibration is not None and n_folds >= 2
        self.calibrator_ = _fit_calibrator(self.calibration, raw, yl) if calibrate else None
        oof = np.empty(len(y))
        oof[labelled] = raw
        if self.calibrator_ is not None:  # cross-fitted: fold k's map never saw fold k
            for train, held in folds:
                fold_map = _fit_calibrator(self.calibration, raw[train], yl[train])
                oof[labelled[held]] = _apply_calibrator(fold_map, raw[held])
        unlabelled = np.flatnonzero(np.isnan(y))
        if len(unlabelled):
            oof[unlabelled] = self.predict(X[unlabelled],
                                           None if groups is None else groups[unlabelled])
        self.oof_ = oof
        self.n_features_in_ = X.shape[1]
        return self

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_compiled", None)  # derived from model_; rebuilt on first predict
        return state

    @cached_property
    def _compiled(self) -> CompiledLinear | None:
        return None if isinstance(self.model_, float) else compile_linear(self.model_)

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Expected quality in [0, 1] for each row; `groups`: the rows' tasks (pooled only)."""
        X = np.asarray(X, dtype=float)
        if self._compiled is not None:
            scores = expit(self._compiled.decision(X))
        else:
            scores = _scores(self.model_, self._inputs(X, groups))
        return _apply_calibrator(self.calibrator_, scores)
