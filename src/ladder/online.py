"""An online threshold cascade that learns from what it serves (theory.md §6).

A gateway drives it one query at a time: `observe` what a rung produced, `decide` whether
to stop, and later `update` with the quality label of a model that ran. The learner only
ever holds what was observed: a model it did not run has no cell in its history, so it
cannot read that model's quality, cost or signals (partial feedback). Unrun cells are
filled, when thresholds are refitted, by a regression from the last signals seen to the
missing model's quality, fitted on the rows that did run it: whether a row escalated
depends only on those signals and an independent exploration coin, so the fill is
unbiased under a well-specified regression (missing at random given the signals).

Exploration: after a rung whose rule says stop, escalate anyway with probability
ε_t = min(1, c/√t), so that later rungs keep receiving labels where the rule would stop.
Warm start: another log's rows (a full-information offline log) join the fit as a pooled
task (theory.md §9), worth `warm_weight` queries; each own query replaces one, so the
prior fades out once `warm_weight` own queries have arrived.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ladder.policies.stages import PredictorCache, predict
from ladder.policies.threshold import fit_thresholds, stage_rewards
from ladder.predictors import QualityPredictor
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable
from ladder.signals import stage_features

OWN_TASK = "online"  # the task name of the served queries when pooling with a warm start


def exploration_rate(t: int, c: float) -> float:
    """ε_t = min(1, c/√t) for the t-th query (1-based)."""
    return min(1.0, c / np.sqrt(max(t, 1)))


class _History:
    """What was observed so far: one row per query, one column per chain rung, NaN (or −1
    for answers) where the rung did not run or no label arrived. Arrays grow by doubling."""

    def __init__(self, chain: Sequence[str]):
        self.chain = tuple(chain)
        self.rows: dict[Hashable, int] = {}
        self.ids: list[Hashable] = []
        self.codes: dict[Hashable, int] = {}  # answer → code, for agreement features
        r = len(chain)
        self.quality, self.cost = np.empty((0, r)), np.empty((0, r))
        self.signals = {name: np.empty((0, r)) for name in SIGNAL_COLUMNS}
        self.answers = np.empty((0, r), dtype=np.int64)
        self.prompt_len, self.ran = np.empty(0), np.empty(0, dtype=np.int64)

    @property
    def n(self) -> int:
        return len(self.ids)

    def _grow(self) -> None:
        size = max(64, 2 * self.n)

        def grown(old: np.ndarray, fill: float) -> np.ndarray:
            new = np.full((size, *old.shape[1:]), fill, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            return new

        self.quality, self.cost = grown(self.quality, np.nan), grown(self.cost, np.nan)
        self.signals = {k: grown(v, np.nan) for k, v in self.signals.items()}
        self.answers, self.ran = grown(self.answers, -1), grown(self.ran, 0)
        self.prompt_len = grown(self.prompt_len, np.nan)

    def row(self, query_id: Hashable) -> int:
        """The query's row, added when new."""
        if query_id not in self.rows:
            if self.n == len(self.ran):
                self._grow()
            self.rows[query_id] = self.n
            self.ids.append(query_id)
        return self.rows[query_id]

    def table(self, sel: slice | None = None) -> QueryTable:
        """The observed history (or some rows of it) as a QueryTable over the chain."""
        sel = slice(0, self.n) if sel is None else sel
        ids = np.empty(len(self.ids[sel]), dtype=object)
        ids[:] = self.ids[sel]
        return QueryTable(
            query_ids=ids, models=self.chain, quality=self.quality[sel],
            cost=self.cost[sel], signals={k: v[sel] for k, v in self.signals.items()},
            answers=self.answers[sel], prompt_len=self.prompt_len[sel],
            benchmark=np.full(len(ids), OWN_TASK, dtype=object),
        )


def _stack(a: QueryTable, b: QueryTable) -> QueryTable:
    """Two tables over the same models, one after the other (fields neither has are None)."""
    def both(x: np.ndarray | None, y: np.ndarray | None, n_y: int, fill: object) -> np.ndarray:
        def filled(v: np.ndarray | None, like: np.ndarray, n: int) -> np.ndarray:
            return np.full((n, *like.shape[1:]), fill, dtype=like.dtype) if v is None else v
        like = x if x is not None else y
        return np.concatenate([filled(x, like, a.n), filled(y, like, n_y)])

    def optional(name: str, fill: object) -> np.ndarray | None:
        x, y = getattr(a, name), getattr(b, name)
        return None if x is None and y is None else both(x, y, b.n, fill)

    return replace(
        a, query_ids=np.concatenate([a.query_ids, b.query_ids]),
        quality=np.vstack([a.quality, b.quality]), cost=np.vstack([a.cost, b.cost]),
        signals={k: np.vstack([a.signals[k], b.signals[k]]) for k in a.signals},
        answers=optional("answers", -1), prompt_len=optional("prompt_len", np.nan),
        benchmark=optional("benchmark", None), sample_share=None, sample_codes=None,
        prompts=None, split=None,
    )


class OnlineCascade(BaseEstimator):
    """A threshold cascade over `chain` refitted on its own partial-feedback history.

    lam: price of one unit of cost; c: exploration constant of ε_t = min(1, c/√t);
    refit_every, refit_growth: refit after max(refit_every, refit_growth × labels so far)
    new labels (a geometric schedule: O(log T) refits); alpha: plug-in weight of labels in
    the tuning targets (theory.md §9); warm_start: a full-information log over the chain's
    models (another benchmark's train split) used as a pooled prior worth `warm_weight`
    queries; random_state: seeds exploration and the folds.
    """

    def __init__(self, chain: Sequence[str], lam: float, c: float = 1.0, refit_every: int = 20,
                 refit_growth: float = 0.25, alpha: float = 1.0,
                 warm_start: QueryTable | None = None, warm_weight: int = 100,
                 random_state: int = 0):
        self.chain = chain
        self.lam = lam
        self.c = c
        self.refit_every = refit_every
        self.refit_growth = refit_growth
        self.alpha = alpha
        self.warm_start = warm_start
        self.warm_weight = warm_weight
        self.random_state = random_state
        self._reset()

    def _reset(self) -> None:
        self.history_ = _History(self.chain)
        self.rng_ = np.random.default_rng(self.random_state)
        self.n_labels_ = 0
        self.n_refits_ = 0
        self.next_refit_ = self.refit_every
        self.predictors_: list[QualityPredictor] | None = None
        self.thresholds_: np.ndarray | None = None
        self._warm = None
        if self.warm_start is not None:
            warm = self.warm_start.select_models(list(self.chain))
            order = np.random.default_rng(self.random_state).permutation(warm.n)
            warm = warm.rows(order)
            ids = np.array([f"warm:{q}" for q in warm.query_ids], dtype=object)
            tasks = warm.benchmark if warm.benchmark is not None else np.full(warm.n, "warm")
            self._warm = replace(warm, query_ids=ids, benchmark=tasks.astype(object))
            self._refit()

    @property
    def t_(self) -> int:
        """Queries seen so far."""
        return self.history_.n

    def epsilon(self, t: int) -> float:
        return exploration_rate(t, self.c)

    def observe(self, query_id: Hashable, stage: int, cost: float,
                signals: Mapping[str, float] | None = None, answer: Hashable | None = None,
                prompt_len: float | None = None) -> None:
        """Record what rung `stage` (0-based chain position) produced for a query: its cost,
        its signals (any of SIGNAL_COLUMNS) and extracted answer. Rungs arrive in order."""
        h = self.history_
        i = h.row(query_id)
        if stage != h.ran[i]:
            raise ValueError(f"query {query_id!r}: rung {stage} observed after {h.ran[i]} rungs")
        h.cost[i, stage] = cost
        for name, value in (signals or {}).items():
            h.signals[name][i, stage] = np.nan if value is None else value
        if answer is not None:
            h.answers[i, stage] = h.codes.setdefault(answer, len(h.codes))
        if prompt_len is not None:
            h.prompt_len[i] = prompt_len
        h.ran[i] = stage + 1

    def decide(self, query_id: Hashable) -> bool:
        """Stop (True) or escalate after the last rung observed for this query. The fitted
        rule, overridden with probability ε_t by exploration when it says stop; before any
        fit, escalate (every label is worth having then)."""
        h = self.history_
        i = h.rows[query_id]
        stage = int(h.ran[i]) - 1
        if stage == len(self.chain) - 1:
            return True
        if self.predictors_ is None:
            return False
        one = h.table(slice(i, i + 1))
        features = stage_features(one, range(len(self.chain)), stage)
        stop = bool(predict(self.predictors_[stage], one, features)[0] >= self.thresholds_[stage])
        if stop and self.rng_.random() < self.epsilon(i + 1):
            return False
        return stop

    def ran(self, query_id: Hashable) -> tuple[str, ...]:
        """The chain models run so far for a query."""
        h = self.history_
        return h.chain[: h.ran[h.rows[query_id]]] if query_id in h.rows else ()

    def update(self, query_id: Hashable, model: str, quality: float) -> None:
        """A label for one model that ran on the query; refits when the schedule says so."""
        if model not in self.ran(query_id):
            raise ValueError(f"model {model!r} did not run on query {query_id!r}: "
                             "only the models that ran can be labelled")
        h = self.history_
        i, stage = h.rows[query_id], list(self.chain).index(model)
        if np.isnan(h.quality[i, stage]):
            self.n_labels_ += 1
        h.quality[i, stage] = quality
        if self.n_labels_ >= self.next_refit_:
            self.refit()

    def refit(self) -> bool:
        """Refit now and schedule the next refit; False (nothing changed) while some rung
        lacks a label of each kind. `update` calls it on schedule; a learner rebuilt from
        stored traffic replays its history first and then refits once."""
        if not self._labelled_everywhere():
            return False
        self._refit()
        self.next_refit_ = self.n_labels_ + max(self.refit_every,
                                                int(self.refit_growth * self.n_labels_))
        return True

    def _labelled_everywhere(self) -> bool:
        """Whether every rung has a label of each kind (0 and 1) in what a refit would fit
        on: the own history plus what remains of the warm prior."""
        q = self._fit_table()[0].quality
        return bool(np.all(np.nansum(q, axis=0) >= 1) and np.all(np.nansum(1 - q, axis=0) >= 1))

    def _fit_table(self) -> tuple[QueryTable, np.ndarray]:
        """The own history plus what remains of the warm prior, and the rungs run per row."""
        own = self.history_.table()
        ran = self.history_.ran[: own.n]
        if self._warm is None:
            return own, ran
        keep = max(0, self.warm_weight - own.n)
        if keep == 0:
            return own, ran
        warm = self._warm.rows(slice(0, keep))
        return _stack(own, warm), np.r_[ran, np.full(warm.n, len(self.chain))]

    def _refit(self) -> None:
        """Predictors on the labelled rows (cross-fitted scores), unrun cells filled by the
        regression from the last observed rung, thresholds on the plug-in rewards. One BLAS
        thread: on a few hundred rows, threads cost ~4× more than they save."""
        with threadpool_limits(1):
            self._fit_policy()
        self.n_refits_ += 1

    def _fit_policy(self) -> None:
        table, ran = self._fit_table()
        chain = list(range(len(self.chain)))
        pooled = table.benchmark is not None and len(set(table.benchmark)) > 1
        cache = PredictorCache(table, random_state=self.random_state,
                               pool=table if pooled else None, pool_strength=1.0)
        scores = cache.scores(table, chain)
        run = np.arange(len(chain))[None, :] < ran[:, None]
        # plug-in targets: α·label + (1 − α)·p̂, p̂ where no label arrived; p̂ is the rung's
        # cross-fitted prediction from the signals so far (a label never scores itself)
        blended = self.alpha * table.quality + (1 - self.alpha) * scores
        targets = np.where(run, np.where(np.isnan(table.quality), scores, blended), np.nan)
        cost = np.where(run, table.cost, np.nanmean(np.where(run, table.cost, np.nan), axis=0))
        logits = _logit(scores)  # before any fill: the scores the stops were decided on
        for last in range(len(chain) - 1):  # rows whose last rung was `last`
            rows = np.flatnonzero(ran == last + 1)
            if len(rows) == 0:
                continue
            X = logits[:, : last + 1]
            for j in range(last + 1, len(chain)):
                scores[rows, j] = targets[rows, j] = _forward_fill(
                    X, table.quality[:, j], ran > j, rows)
        rewards = stage_rewards(replace(table, cost=cost), chain, self.lam, targets)
        self.thresholds_ = fit_thresholds(scores, rewards, unreached="fit")
        self.predictors_ = cache.predictors(chain)


def _forward_fill(X: np.ndarray, quality: np.ndarray, has: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
    """A later rung's expected quality on `rows`, regressed on the rows that ran it (`has`)
    from the logits of the scores so far. Whether a row escalated depended only on those
    scores (and an independent exploration coin), so they are the adjustment set: the
    regression corrects the selection of the rows that ran the rung (missing at random
    given them). Few inputs, so it extrapolates from few escalated rows; the mean label
    when those rows give no contrast."""
    labelled = has & ~np.isnan(quality)
    y = quality[labelled]
    if len(y) < 10 or np.ptp(y) == 0:
        return np.full(len(rows), y.mean() if len(y) else 0.5)
    weights = np.r_[y, 1 - y]  # fractional qualities as two weighted rows
    model = LogisticRegression(C=1.0).fit(
        np.vstack([X[labelled]] * 2), np.r_[np.ones(len(y)), np.zeros(len(y))],
        sample_weight=weights)
    return model.predict_proba(X[rows])[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))
