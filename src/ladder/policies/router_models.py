"""Per-query quality models for routers: ĝ_m(x) ≈ P(model m is right | prompt features x).

Each takes a design matrix X (sparse or dense, from `ladder.prompt_features`) and the
(n, k) quality table Q, NaN where a query is unlabelled for a model (those cells are
skipped), and predicts an (n, k) array in [0, 1]. Qualities need not be 0/1: a judge score
or pass@k in [0, 1] is fitted as a soft label (log loss with the label as target).

- `LogisticQuality`: one logistic regression (or MLP) per model.
- `KNNQuality`: RouterBench's kNN baseline, each model's mean quality over the k nearest
  training prompts (cosine).
- `IRTQuality`: a low-rank, IRT-style model, logit ĝ_m(x) = b_m + a_m·θ(x) with
  θ(x) = Wᵀx shared by every model, fitted jointly: the query factors are learned from all
  models' labels at once, so each model borrows strength from the others (and, with task
  columns in X, across tasks).

`cross_fit` chooses a model's hyper-parameters by K-fold held-out Brier score on the
training rows only and returns the out-of-fold predictions at the chosen ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterGrid
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import normalize

from ladder.policies.base import held_out_folds
from ladder.prompt_features import TransientCache

Matrix = np.ndarray | sp.spmatrix
_EPS = 1e-4  # predicted probabilities are kept inside [ε, 1 − ε]


def _soft(X: Matrix, q: np.ndarray) -> tuple[Matrix, np.ndarray, np.ndarray]:
    """(X, y, weight) for a classifier on labels in [0, 1]: a fractional label q becomes a
    positive row of weight q and a negative row of weight 1 − q; 0/1 labels stay one row."""
    if np.all((q == 0) | (q == 1)):
        return X, q.astype(int), np.ones(len(q))
    stack = sp.vstack if sp.issparse(X) else np.vstack
    return (stack([X, X]), np.r_[np.ones(len(q), int), np.zeros(len(q), int)],
            np.r_[q, 1.0 - q])


def brier(predicted: np.ndarray, quality: np.ndarray) -> float:
    """Mean squared error over the labelled cells: the common yardstick of every kind."""
    known = ~np.isnan(quality)
    return float(np.mean((predicted[known] - quality[known]) ** 2))


def _column_means(quality: np.ndarray) -> np.ndarray:
    """Each model's mean labelled quality (0.5 for a model with no label at all)."""
    known = ~np.isnan(quality)
    sums = np.where(known, quality, 0.0).sum(axis=0)
    return np.where(known.sum(axis=0) > 0, sums / np.maximum(known.sum(axis=0), 1), 0.5)


class LogisticQuality(BaseEstimator):
    """One classifier per model. kind 'logistic' (ridge penalty 1/C) keeps its coefficients
    stacked as `coef_` (d, k), so one prediction is one product; kind 'mlp' is scikit-learn's
    one-hidden-layer MLP with L2 penalty `alpha`. A model whose training labels are all equal
    predicts that value."""

    def __init__(self, C: float = 1.0, kind: str = "logistic", hidden: int = 32,
                 alpha: float = 1e-3):
        self.C = C
        self.kind = kind
        self.hidden = hidden
        self.alpha = alpha

    def fit(self, X: Matrix, quality: np.ndarray) -> LogisticQuality:
        k = quality.shape[1]
        self.coef_ = np.zeros((X.shape[1], k))
        self.intercept_ = np.zeros(k)
        self.estimators_: list[MLPClassifier | None] = [None] * k
        for m in range(k):
            rows = ~np.isnan(quality[:, m])
            q = quality[rows, m]
            if len(q) == 0 or np.ptp(q) == 0:
                self.intercept_[m] = logit(np.clip(q.mean() if len(q) else 0.5, _EPS, 1 - _EPS))
                continue
            Xs, y, w = _soft(X[rows], q)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if self.kind == "mlp":
                    self.estimators_[m] = MLPClassifier(
                        (self.hidden,), alpha=self.alpha, max_iter=300, random_state=0
                    ).fit(Xs, y, sample_weight=w)
                    continue
                head = LogisticRegression(C=self.C, max_iter=500).fit(Xs, y, sample_weight=w)
            self.coef_[:, m], self.intercept_[m] = head.coef_[0], head.intercept_[0]
        return self

    def predict(self, X: Matrix) -> np.ndarray:
        out = expit(np.asarray(X @ self.coef_) + self.intercept_)
        for m, estimator in enumerate(self.estimators_):
            if estimator is not None:
                out[:, m] = estimator.predict_proba(X)[:, 1]
        return np.clip(out, _EPS, 1 - _EPS)


DENSE_CELLS = 5_000_000  # a kNN router keeps its transposed training matrix dense below this


class KNNQuality(TransientCache, BaseEstimator):
    """Mean quality of each model over the `n_neighbors` most similar training prompts
    (cosine similarity of the feature rows); unlabelled cells are left out of the mean."""

    def __init__(self, n_neighbors: int = 10):
        self.n_neighbors = n_neighbors

    def fit(self, X: Matrix, quality: np.ndarray) -> KNNQuality:
        self.X_ = normalize(X)
        self.quality_ = quality
        self.prior_ = _column_means(quality)
        return self

    def predict(self, X: Matrix, chunk: int = 1024) -> np.ndarray:
        """In chunks of rows, so the similarity matrix stays small on large logs; one sparse
        row (a live decision) by its few non-zero features alone."""
        if sp.issparse(X) and X.shape[0] == 1 and sp.issparse(self.X_):
            return self._predict_sparse_row(sp.csr_matrix(X))
        X = normalize(X)
        k = min(self.n_neighbors, self.X_.shape[0])
        out = np.empty((X.shape[0], self.quality_.shape[1]))
        for start in range(0, X.shape[0], chunk):
            similarity = X[start:start + chunk] @ self.X_.T
            similarity = (similarity.toarray() if sp.issparse(similarity)
                          else np.asarray(similarity))
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            out[start:start + chunk] = self._mean_quality(nearest)
        return out

    def _mean_quality(self, nearest: np.ndarray) -> np.ndarray:
        """(rows, k_nn) neighbour indices → (rows, models) mean known quality (the prior
        where no neighbour has a label)."""
        neighbours = self.quality_[nearest]  # (rows, k_nn, models)
        known = ~np.isnan(neighbours)
        counts = known.sum(axis=1)
        sums = np.where(known, neighbours, 0.0).sum(axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), self.prior_)

    def _predict_sparse_row(self, row: sp.csr_matrix) -> np.ndarray:
        """Cosine similarities of one row from the training columns it touches: ~20× less
        work than normalising it and multiplying the whole training matrix."""
        if "_cache_by_feature" not in self.__dict__:  # features × rows, dense when small:
            by_feature = sp.csr_matrix(self.X_.T)     # sparse row slicing costs ~50 µs
            small = by_feature.shape[0] * by_feature.shape[1] <= DENSE_CELLS
            self._cache_by_feature = by_feature.toarray() if small else by_feature
        norm = np.sqrt(row.data @ row.data)
        k = min(self.n_neighbors, self.X_.shape[0])
        if norm == 0:
            similarity = np.zeros(self.X_.shape[0])
        else:
            similarity = self._cache_by_feature[row.indices].T @ (row.data / norm)
        nearest = np.argpartition(-np.asarray(similarity).ravel(), k - 1)[:k]
        return self._mean_quality(nearest[None, :])


class IRTQuality(BaseEstimator):
    """logit ĝ_m(x) = b_m + a_m·θ(x), θ(x) = Wᵀx ∈ R^rank, all models fitted jointly by
    L-BFGS on the log loss of the labelled cells plus alpha·(‖W‖² + ‖A‖²)/2.

    b_m is model m's overall ability, θ(x) the query's position on `rank` latent traits
    (difficulty among them) and a_m how much model m's success depends on each trait.
    """

    def __init__(self, rank: int = 2, alpha: float = 1e-2, max_iter: int = 200,
                 random_state: int = 0):
        self.rank = rank
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: Matrix, quality: np.ndarray) -> IRTQuality:
        d = X.shape[1]
        k, r = quality.shape[1], self.rank
        known = ~np.isnan(quality)
        target = np.where(known, quality, 0.0)
        count = max(int(known.sum()), 1)
        prior = np.clip(_column_means(quality), _EPS, 1 - _EPS)
        rng = np.random.default_rng(self.random_state)
        start = np.r_[rng.normal(0, 0.1, d * r), rng.normal(0, 0.1, k * r), logit(prior)]
        Xt = X.T.tocsr() if sp.issparse(X) else X.T

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[:d * r].reshape(d, r)
            A = theta[d * r:d * r + k * r].reshape(k, r)
            b = theta[d * r + k * r:]
            Z = np.asarray(X @ W)
            L = Z @ A.T + b
            P = expit(L)
            # log loss with soft targets: softplus(L) − t·L, written stably
            value = np.where(known, np.logaddexp(0, L) - target * L, 0.0).sum() / count
            R = np.where(known, P - target, 0.0) / count
            penalty = 0.5 * self.alpha * (np.sum(W ** 2) + np.sum(A ** 2))
            grad_W = np.asarray(Xt @ (R @ A)) + self.alpha * W
            grad_A = R.T @ Z + self.alpha * A
            return value + penalty, np.r_[grad_W.ravel(), grad_A.ravel(), R.sum(axis=0)]

        result = minimize(loss, start, jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter})
        theta = result.x
        self.W_ = theta[:d * r].reshape(d, r)
        self.A_ = theta[d * r:d * r + k * r].reshape(k, r)
        self.b_ = theta[d * r + k * r:]
        return self

    def predict(self, X: Matrix) -> np.ndarray:
        return np.clip(expit(np.asarray(X @ self.W_) @ self.A_.T + self.b_), _EPS, 1 - _EPS)


KINDS: dict[str, type[BaseEstimator]] = {
    "logistic": LogisticQuality, "mlp": LogisticQuality, "knn": KNNQuality, "irt": IRTQuality,
}
GRIDS: dict[str, dict[str, list]] = {  # searched on training folds only
    "logistic": {"C": [0.1, 1.0, 10.0]},
    "mlp": {"kind": ["mlp"], "alpha": [1e-3, 1e-1]},
    "knn": {"n_neighbors": [5, 15, 40]},
    "irt": {"rank": [1, 2, 4], "alpha": [1e-3, 1e-2]},
}


def oof_predictions(model: BaseEstimator, X: Matrix, quality: np.ndarray,
                    folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold predictions: row i is predicted by a fit that never saw row i."""
    out = np.empty(quality.shape)
    for fit_rows, held in folds:
        out[held] = clone(model).fit(X[fit_rows], quality[fit_rows]).predict(X[held])
    return out


def cross_fit(kind: str, X: Matrix, quality: np.ndarray, n_folds: int = 5,
              grid: Mapping[str, list] | None = None) -> tuple[BaseEstimator, np.ndarray, dict]:
    """(model refitted on all rows with the chosen parameters, its out-of-fold predictions at
    those parameters, the chosen parameters). Chosen by held-out Brier score over K folds
    of these (training) rows; ties go to the first (simplest) setting of the grid."""
    if kind not in KINDS:
        raise ValueError(f"unknown router model '{kind}'; choose from {', '.join(KINDS)}")
    folds = held_out_folds(len(quality), n_folds)
    best: tuple[float, dict, np.ndarray] | None = None
    for params in ParameterGrid(dict(GRIDS[kind] if grid is None else grid)):
        oof = oof_predictions(KINDS[kind](**params), X, quality, folds)
        score = brier(oof, quality)
        if best is None or score < best[0]:
            best = (score, params, oof)
    assert best is not None
    _, params, oof = best
    return KINDS[kind](**params).fit(X, quality), oof, params
