"""Pre-generation routers (theory.md §4.8): one model per query, chosen from the prompt alone.

    pick(x) = argmax_m  ĝ_m(x) − λ·ĉ_m(x)

ĝ_m(x) is a quality model on prompt features (`router_models`), ĉ_m(x) a per-model linear
fit of cost on prompt length where costs vary per query on train, else the mean cost.
A router pays for one model only; a cascade pays the cheap model first.

Budget mode (two models, as RouteLLM): send a query to the strong model when its win score
ĝ_strong(x) − ĝ_weak(x) is above a threshold set, on out-of-fold scores of the training
split, for a target share of strong-model calls.

`Router` chooses among its variants (quality model × feature kind) by the held-out
objective J_λ of their out-of-fold decisions on the training split; never on test.
`RouterCache` fits every variant once, so a λ sweep only re-decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from ladder.policies.base import Outcome, best_model
from ladder.policies.router_models import cross_fit
from ladder.prompt_features import (
    FeatureError,
    TransientCache,
    embeddings_available,
    make_features,
)
from ladder.runlog.table import QueryTable

QUALITY_KINDS = ("logistic", "knn", "irt")  # tried by default; "mlp" on request


def variant_name(features: str, kind: str) -> str:
    return f"{kind}-{features}"


def default_variants() -> list[str]:
    """Every default quality model on text features, and on embeddings when installed."""
    kinds = ["text", *(["embedding"] if embeddings_available() else [])]
    return [variant_name(f, q) for f in kinds for q in QUALITY_KINDS]


def _parse(name: str) -> tuple[str, str]:
    kind, _, features = name.partition("-")
    if kind not in (*QUALITY_KINDS, "mlp") or features not in ("text", "embedding"):
        raise FeatureError(f"unknown router variant '{name}'; variants are <model>-<features> "
                           "with model logistic, mlp, knn or irt and features text or "
                           "embedding (e.g. logistic-text)")
    return features, kind


def _reorder(values: np.ndarray, fitted: Sequence[str], table: QueryTable) -> np.ndarray:
    """Columns in `fitted` order → the table's model order."""
    missing = [m for m in table.models if m not in fitted]
    if missing:
        raise ValueError(f"the router was not fitted on model(s) {', '.join(missing)}")
    return values[:, [list(fitted).index(m) for m in table.models]]


class CostModel(BaseEstimator):
    """ĉ_m(x) = max(0, a_m + b_m·len(prompt)), fitted by least squares on train, when some
    model's cost varies across queries by more than `rtol` of its mean; otherwise (or without
    prompt lengths) the mean cost. Missing lengths get the training mean length."""

    def __init__(self, rtol: float = 0.01):
        self.rtol = rtol

    def fit(self, table: QueryTable) -> CostModel:
        cost = table.cost
        self.intercept_ = cost.mean(axis=0)
        self.slope_ = np.zeros(table.k)
        self.mean_length_ = 0.0
        lengths = table.prompt_len
        varies = cost.std(axis=0) > self.rtol * np.abs(cost.mean(axis=0))
        if lengths is not None and np.isfinite(lengths).sum() > 1 and varies.any():
            rows = np.isfinite(lengths)
            x = lengths[rows]
            self.mean_length_ = float(x.mean())
            if x.var() > 0:
                self.slope_ = ((x - x.mean()) @ (cost[rows] - cost[rows].mean(axis=0))
                               / ((x - x.mean()) @ (x - x.mean())))
                self.intercept_ = cost[rows].mean(axis=0) - self.slope_ * x.mean()
        return self

    def predict_lengths(self, lengths: np.ndarray | None, n: int) -> np.ndarray:
        x = np.full(n, self.mean_length_) if lengths is None else np.asarray(lengths, float)
        x = np.where(np.isfinite(x), x, self.mean_length_)
        return np.maximum(self.intercept_ + np.outer(x, self.slope_), 0.0)


class PromptQuality(TransientCache, BaseEstimator):
    """Features + quality model: ĝ(x) for every model, from the prompt (and task)."""

    def __init__(self, features: str = "text", kind: str = "logistic", n_folds: int = 5):
        self.features = features
        self.kind = kind
        self.n_folds = n_folds

    def fit_oof(self, table: QueryTable) -> tuple[PromptQuality, np.ndarray]:
        """Fit on the table's labelled cells; also return the out-of-fold ĝ of its rows."""
        self.features_ = make_features(self.features).fit(table.prompts, table.benchmark)
        X = self.features_.transform(table.prompts, table.benchmark)
        self.model_, oof, self.params_ = cross_fit(self.kind, X, table.quality, self.n_folds)
        self.models_ = table.models
        return self, oof

    def fit(self, table: QueryTable) -> PromptQuality:
        return self.fit_oof(table)[0]

    def predict(self, table: QueryTable) -> np.ndarray:
        """(n, k) ĝ in the fitted model order; the last two tables' answers are memoised (a
        λ sweep replays the same train and test tables once per λ)."""
        memo = self.__dict__.setdefault("_cache_memo", [])
        for seen, out in memo:
            if seen is table:
                return out
        out = self.model_.predict(self.features_.transform(table.prompts, table.benchmark))
        memo[:] = [*memo[-1:], (table, out)]
        return out

    def predict_one(self, prompt: str, task: object = None) -> np.ndarray:
        return self.model_.predict(self.features_.transform_one(prompt, task))[0]


class RouterCache:
    """Every variant fitted once on `train`, with its out-of-fold ĝ, and the cost model."""

    def __init__(self, train: QueryTable, variants: Sequence[str] | None = None,
                 n_folds: int = 5):
        if train.prompts is None:
            raise FeatureError("the log has no 'prompt' column: routers need the query texts")
        self.train = train
        self.variants = list(variants) if variants else default_variants()
        self.cost = CostModel().fit(train)
        self.fitted: dict[str, tuple[PromptQuality, np.ndarray]] = {}
        with threadpool_limits(1, "blas"):  # many small fits: BLAS threads only contend
            for name in self.variants:
                features, kind = _parse(name)
                self.fitted[name] = PromptQuality(features, kind, n_folds).fit_oof(train)

    def serves(self, table: QueryTable) -> bool:
        """Whether the out-of-fold ĝ are `table`'s: the same queries and models (a copy of
        the table, as a worker process receives, serves too)."""
        return self.train is table or (
            self.train.models == table.models
            and np.array_equal(self.train.query_ids, table.query_ids))


def router_cache(table: QueryTable) -> RouterCache | None:
    """The router variants fitted on `table`, or None when it has no prompts (the router,
    the routed cascade and auto's routed option are then left out)."""
    return None if table.prompts is None else RouterCache(table)


class Router(TransientCache, BaseEstimator):
    """argmax_m ĝ_m(x) − λ·ĉ_m(x) over the pool, or budget mode between two models.

    lam: price of one unit of cost in quality; variants: names to choose among (None: the
    defaults); budget: target share of strong-model calls (two-model mode), None for the λ
    rule. Fitted: `models_`, `quality_` (the chosen PromptQuality), `cost_`, `variant_`,
    `choice_`, `candidates_` (held-out objective of each variant), `mean_cost_`
    (tie-break), `pair_` and `threshold_` in budget mode.
    """

    family = "router"

    def __init__(self, lam: float = 0.0, variants: Sequence[str] | None = None,
                 budget: float | None = None, n_folds: int = 5):
        self.lam = lam
        self.variants = variants
        self.budget = budget
        self.n_folds = n_folds

    def fit(self, table: QueryTable, cache: RouterCache | None = None) -> Router:
        if self.budget is not None and not 0 <= self.budget <= 1:
            raise ValueError(f"budget is a share of strong-model calls in [0, 1], "
                             f"got {self.budget}")
        if not isinstance(cache, RouterCache) or not cache.serves(table):
            cache = RouterCache(table, self.variants, self.n_folds)
        names = list(self.variants) if self.variants else cache.variants
        self.models_ = table.models
        self.cost_ = cache.cost
        self.mean_cost_ = table.mean_cost()
        if self.budget is not None:
            self.pair_ = (int(np.argmin(self.mean_cost_)),
                          best_model(np.nanmean(table.quality, axis=0), self.mean_cost_))
        cost_hat = self.cost_.predict_lengths(table.prompt_len, table.n)
        rows = np.arange(table.n)
        scored = []
        for name in names:
            quality, oof = cache.fitted[name]
            threshold = self._threshold(oof) if self.budget is not None else None
            pick = self.pick(oof, cost_hat, threshold)
            q, c = table.quality[rows, pick], table.cost[rows, pick]
            known = ~np.isnan(q)  # unlabelled rows are never scored
            objective = float(q[known].mean() - self.lam * c[known].mean()) if known.any() \
                else -np.inf
            scored.append((objective, name, quality, threshold, Outcome(pick, pick, q, c)))
        best = max(scored, key=lambda s: s[0])  # ties: the first variant listed
        objective, self.variant_, self.quality_, threshold, self.held_out_ = best
        if threshold is not None:
            self.threshold_ = threshold
        self.choice_ = {"kind": "router", "variant": self.variant_,
                        "objective": objective, **self.quality_.params_}
        self.candidates_ = [{"variant": s[1], "objective": s[0]} for s in scored]
        return self

    def _threshold(self, oof: np.ndarray) -> float:
        """Win-score threshold that sends `budget` of the training queries to the strong
        model (out-of-fold scores, so it matches the scores of unseen queries)."""
        weak, strong = self.pair_
        score = oof[:, strong] - oof[:, weak]
        if self.budget >= 1:
            return -np.inf
        if self.budget <= 0:
            return np.inf
        return float(np.quantile(score, 1 - self.budget))

    def pick(self, quality: np.ndarray, cost: np.ndarray,
              threshold: float | None = None) -> np.ndarray:
        """Indices into models_: the best ĝ − λĉ, ties to the cheaper model on train."""
        if self.budget is not None:
            weak, strong = self.pair_
            t = self.threshold_ if threshold is None else threshold
            return np.where(quality[:, strong] - quality[:, weak] > t, strong, weak)
        order = np.argsort(self.mean_cost_, kind="stable")
        utility = (quality - self.lam * cost)[:, order]
        return order[utility.argmax(axis=1)]

    def predict_quality(self, table: QueryTable) -> np.ndarray:
        """(n, k) predicted P(model correct | prompt), columns in `table.models` order."""
        return _reorder(self.quality_.predict(table), self.models_, table)

    def predict_cost(self, table: QueryTable) -> np.ndarray:
        """(n, k) predicted cost per query, columns in `table.models` order."""
        return _reorder(self.cost_.predict_lengths(table.prompt_len, table.n), self.models_,
                        table)

    def choose(self, table: QueryTable) -> np.ndarray:
        """Per query, the index into `table.models` of the model the router sends it to."""
        pick = self.pick(self.quality_.predict(table),
                          self.cost_.predict_lengths(table.prompt_len, table.n))
        return np.array([table.index(m) for m in self.models_], dtype=int)[pick]

    def replay(self, table: QueryTable, cache: object = None) -> Outcome:
        """The router on logged outputs: it runs (and pays for) exactly the chosen model."""
        if table.prompts is None:
            raise FeatureError("the log has no 'prompt' column: routers need the query texts")
        pick = self.choose(table)
        rows = np.arange(table.n)
        return Outcome(pick, pick, table.quality[rows, pick], table.cost[rows, pick])

    def decide(self, prompt: str, task: object = None) -> tuple[str, np.ndarray]:
        """One live decision: (model name, ĝ per model in `models_` order)."""
        quality = self.quality_.predict_one(prompt, task)
        cost = self.cost_.predict_lengths(np.array([float(len(prompt))]), 1)
        return self.models_[int(self.pick(quality[None, :], cost)[0])], quality
