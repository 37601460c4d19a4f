"""Per-stage quality predictors of a chain, fitted once per chain prefix and shared.

The features after stage i depend only on the models run so far (the chain's
prefix), so predictors are cached by prefix: a search over many chains and many
λ values fits each prefix once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, fields

import numpy as np

from ladder.policies.base import Outcome, resolve_chain, run_cascade
from ladder.predictors import QualityPredictor
from ladder.runlog.table import QueryTable
from ladder.signals import stage_features


class PredictorCache:
    """Quality predictors fitted on one training table, keyed by chain prefix.

    pool: a table holding every query of `train` and, beside them, other tasks' training
    queries (its `benchmark` column names the task): the predictors are then fitted on all
    of it with partial pooling across tasks, and `train` is still the table tuned on."""

    def __init__(self, train: QueryTable, kind: str = "logistic", random_state: int = 0,
                 pool: QueryTable | None = None, pool_strength: float | None = None):
        self.train = train
        self.kind = kind
        self.random_state = random_state
        self.pool = pool
        self.pool_strength = pool_strength  # None: chosen on folds when pooling
        self._positions = None if pool is None else _positions(pool, train)
        self._fitted: dict[tuple[int, ...], QualityPredictor] = {}
        self._scores: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self._tables: dict[int, QueryTable] = {}  # keeps scored tables alive so ids stay unique

    def predictor(self, prefix: Sequence[int]) -> QualityPredictor:
        """The predictor of the last model of `prefix` given all of `prefix`'s signals."""
        key = tuple(prefix)
        if key not in self._fitted:
            table = self.train if self.pool is None else self.pool
            X = stage_features(table, key, len(key) - 1)
            groups = None if self.pool is None else table.benchmark
            self._fitted[key] = QualityPredictor(
                self.kind, random_state=self.random_state, pool_strength=self.strength(),
            ).fit(X, table.quality[:, key[-1]], groups)
        return self._fitted[key]

    def strength(self) -> float:
        """The pooling strength: given, or the grid value whose single-model predictors have
        the least out-of-fold log-loss on the pooled training rows (large = no pooling)."""
        if self.pool_strength is None:
            if self.pool is None:
                self.pool_strength = 1.0
            else:
                losses = [sum(_pooled_loss(self.pool, m, s, self.kind, self.random_state)
                              for m in range(self.pool.k)) for s in POOL_STRENGTHS]
                self.pool_strength = POOL_STRENGTHS[int(np.argmin(losses))]
        return self.pool_strength

    def scores(self, table: QueryTable, chain: Sequence[int]) -> np.ndarray:
        """(n, r) predicted quality after each stage; out-of-fold on the training table."""
        self._tables[id(table)] = table
        columns = []
        for i in range(len(chain)):
            key = tuple(chain[: i + 1])
            cache_key = (id(table), key)
            if cache_key not in self._scores:
                model = self.predictor(key)
                if table is self.train:
                    oof = model.oof_
                    self._scores[cache_key] = oof if self._positions is None \
                        else oof[self._positions]
                else:
                    self._scores[cache_key] = predict(model, table, stage_features(table, key, i))
            columns.append(self._scores[cache_key])
        return np.column_stack(columns)

    def fitted_only(self) -> PredictorCache:
        """An independent deep copy holding just the fitted predictors (and the pooling
        strength), for worker processes: the score caches are keyed by object ids, which
        mean nothing in another process, and nothing this process does next (a predictor
        building its numpy fast path on first use, say) can change it while it is sent."""
        copy = PredictorCache(self.train, self.kind, self.random_state, self.pool,
                              self.strength())
        copy._fitted = self._fitted
        return deepcopy(copy)

    def predictors(self, chain: Sequence[int]) -> list[QualityPredictor]:
        return [self.predictor(chain[: i + 1]) for i in range(len(chain))]

    def targets(self, table: QueryTable, alpha: float) -> np.ndarray:
        """(n, k) plug-in tuning targets (theory.md §9): α·label + (1 − α)·p̂_m, with p̂_m
        model m's out-of-fold predicted quality from its own signals; p̂_m where the label
        is missing. α = 1 is label-only tuning (and the judge of held-out objectives)."""
        predicted = np.column_stack([self.scores(table, [m])[:, 0] for m in range(table.k)])
        blended = alpha * table.quality + (1 - alpha) * predicted
        return np.where(np.isnan(table.quality), predicted, blended)


ALPHAS = (0.0, 0.5, 1.0)  # plug-in weights of the labels tuning tries (1 = labels only)
POOL_STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0)  # scale of the task terms; 10 ≈ unpooled


def _pooled_loss(pool: QueryTable, model: int, strength: float, kind: str,
                 random_state: int) -> float:
    """Out-of-fold log-loss of one model's own-signal predictor at a pooling strength."""
    labelled = ~np.isnan(pool.quality[:, model])
    predictor = QualityPredictor(kind, random_state=random_state, pool_strength=strength)
    predictor.fit(stage_features(pool, (model,), 0), pool.quality[:, model], pool.benchmark)
    y, p = pool.quality[labelled, model], np.clip(predictor.oof_[labelled], 1e-6, 1 - 1e-6)
    return float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _positions(pool: QueryTable, train: QueryTable) -> np.ndarray:
    """Row of each training query in the pooled table."""
    if pool.models != train.models:
        raise ValueError("the pooled table must have the training table's models, in order")
    where = {q: i for i, q in enumerate(pool.query_ids)}
    missing = [q for q in train.query_ids if q not in where]
    if missing:
        raise ValueError(f"{len(missing)} training queries are not in the pooled table")
    return np.array([where[q] for q in train.query_ids])


def predict(predictor: QualityPredictor, table: QueryTable, features: np.ndarray) -> np.ndarray:
    """A stage predictor's scores for a table's rows (their task, when it pools tasks)."""
    return predictor.predict(features, table.benchmark)


def chain_scores(
    table: QueryTable, chain: Sequence[int], predictors: Sequence[QualityPredictor]
) -> np.ndarray:
    """(n, r) predicted quality after each stage of a fitted chain."""
    return np.column_stack(
        [predict(p, table, stage_features(table, chain, i)) for i, p in enumerate(predictors)]
    )


REPLAY_CHUNK = 5_000


def replay_chunked(
    table: QueryTable,
    cache: PredictorCache | None,
    replay_part: Callable[[QueryTable, PredictorCache | None], Outcome],
    chunk: int = REPLAY_CHUNK,
) -> Outcome:
    """Replay a large log in slices that stay in the CPU cache (2-2.5× faster and ~40 MiB
    instead of GiBs at 1M queries); with a shared cache the whole table goes at once."""
    if cache is not None or table.n <= chunk:
        return replay_part(table, cache)
    parts = [replay_part(table.rows(slice(i, i + chunk)), None) for i in range(0, table.n, chunk)]
    return Outcome(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Outcome)))


OPTIONAL_INPUTS = ("prompt", "answers", "samples")


def table_inputs(table: QueryTable) -> tuple[str, ...]:
    """Which optional signal sources a table has: a live cascade must present the same ones
    to the predictors as the training log had (a missing source changes the features)."""
    present = {"prompt": table.prompt_len is not None, "answers": table.answers is not None,
               "samples": table.sample_share is not None}
    return tuple(name for name in OPTIONAL_INPUTS if present[name])


@dataclass(frozen=True)
class StageDecision:
    """A policy's decision after one stage, for n queries, with what it was based on.

    scores: (n, stage + 1) predicted quality of each stage run so far; continuation: (n,)
    estimated value of going on (None for rules that have none); returned: (n,) chain
    position of the answer returned when stopping."""

    stop: np.ndarray
    scores: np.ndarray
    continuation: np.ndarray | None
    returned: np.ndarray


def answer_codes(table: QueryTable, chain: Sequence[int]) -> np.ndarray | None:
    """(n, r) answer codes of the chain's stages (equal code = same answer, −1 missing)."""
    return None if table.answers is None else table.answers[:, list(chain)]


def vote_position(scores: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """Chain position whose answer wins the vote of the stages so far, each stage's vote
    weighted by its predicted quality (ties: the better-scored stage). Without answers, or
    for missing ones, a stage only agrees with itself (the vote is then the best score)."""
    if codes is None:
        return scores.argmax(axis=1)
    same = (codes[:, :, None] == codes[:, None, :]) & (codes[:, :, None] >= 0)
    same |= np.eye(codes.shape[1], dtype=bool)[None]
    support = (same * scores[:, None, :]).sum(axis=2)
    leading = support >= support.max(axis=1, keepdims=True)
    return np.where(leading, scores, -np.inf).argmax(axis=1)


class ChainPolicy:
    """Replay and single decisions shared by the cascades that score a fitted chain stage by
    stage. A subclass gives its rule once, `_stops` for the queries at one stage; live
    decisions, the stage-by-stage replay and the all-stages-at-once replay on cached scores
    all apply it, so they cannot disagree. `vote`: return the predicted-quality-weighted
    vote of the stages run instead of the stopping stage's answer."""

    chain_: tuple[str, ...]
    predictors_: list[QualityPredictor]
    inputs_: tuple[str, ...]
    vote: bool = False
    uses_earlier_scores = False  # whether `_stops` looks at stages before the current one
    uses_features = True  # whether `_stops` reads the stage's features

    def _fit_chain(self, table: QueryTable, chain: Sequence[int], cache: PredictorCache) -> None:
        """Record the fitted chain, its predictors and the signal sources they were fitted on."""
        self.chain_ = tuple(table.models[i] for i in chain)
        self.predictors_ = cache.predictors(chain)
        self.inputs_ = table_inputs(table)

    def _stops(self, stage: int, scores: np.ndarray,
               features: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Stop (True) after `stage` given the scores so far (m, stage + 1) and its features,
        and the value of going on that the decision compared against (None if none)."""
        raise NotImplementedError

    def _answer_position(self, scores: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
        """Chain position of the answer returned when stopping with these scores (and answer
        codes) so far."""
        if self.vote:
            return vote_position(scores, codes)
        return np.full(len(scores), scores.shape[1] - 1)

    def returned_positions(self, scores: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
        """(n, r) chain position returned when stopping after each stage."""
        return np.column_stack([
            self._answer_position(scores[:, : i + 1], None if codes is None else codes[:, : i + 1])
            for i in range(scores.shape[1])
        ])

    def _outcome(self, table: QueryTable, chain: list[int], scores: np.ndarray) -> Outcome:
        """The rule applied to every stage's scores at once (the evaluation's cached path)."""
        n, r = scores.shape
        stop = np.ones((n, r), dtype=bool)
        for i in range(r - 1):
            features = stage_features(table, chain, i) if self.uses_features else None
            stop[:, i] = self._stops(i, scores[:, : i + 1], features)[0]
        returned = self.returned_positions(scores, answer_codes(table, chain))
        return run_cascade(table, chain, stop, returned)

    def step(self, table: QueryTable, stage: int,
             earlier_scores: np.ndarray | None = None) -> StageDecision:
        """The decision after `stage` for each query of `table`: features, predictor and rule
        for that one stage. earlier_scores: (n, stage) predicted qualities of the stages
        already run, as a runtime keeps them; computed when the rule needs them."""
        chain = resolve_chain(table, self.chain_)
        features = stage_features(table, chain, stage)
        current = predict(self.predictors_[stage], table, features)[:, None]
        if earlier_scores is None:
            needed = self.uses_earlier_scores or self.vote
            earlier_scores = (
                chain_scores(table, chain[:stage], self.predictors_[:stage])
                if stage and needed else np.full((table.n, stage), np.nan)
            )
        scores = np.hstack([earlier_scores, current])
        if stage == len(chain) - 1:
            stop, continuation = np.ones(table.n, dtype=bool), None
        else:
            stop, continuation = self._stops(stage, scores, features)
        codes = answer_codes(table, chain[: stage + 1])
        return StageDecision(stop, scores, continuation, self._answer_position(scores, codes))

    def decide(self, table: QueryTable, stage: int,
               earlier_scores: np.ndarray | None = None) -> np.ndarray:
        """Stop (True) or escalate after `stage` for each query of `table`."""
        chain = resolve_chain(table, self.chain_)
        if stage == len(chain) - 1:
            return np.ones(table.n, dtype=bool)
        return self.step(table, stage, earlier_scores).stop

    def _replay_sequential(self, table: QueryTable, chain: list[int]) -> Outcome:
        """Climb stage by stage, computing a stage's features and score only for the queries
        still climbing, as a live cascade does."""
        n, r = table.n, len(chain)
        scores = np.zeros((n, r))
        stop = np.zeros((n, r), dtype=bool)
        returned = np.zeros((n, r), dtype=int)
        active = np.arange(n)
        codes = answer_codes(table, chain)
        for i in range(r):
            climbing = table if len(active) == n else table.rows(active)
            features = stage_features(climbing, chain, i)
            scores[active, i] = predict(self.predictors_[i], climbing, features)
            so_far = scores[active, : i + 1]
            stops = (np.ones(len(active), dtype=bool) if i == r - 1
                     else self._stops(i, so_far, features)[0])
            stop[active[stops], i] = True
            stopped = active[stops]
            returned[stopped, i] = self._answer_position(
                so_far[stops], None if codes is None else codes[stopped, : i + 1])
            active = active[~stops]
            if len(active) == 0:
                break
        return run_cascade(table, chain, stop, returned)

    def replay(self, table: QueryTable, cache: PredictorCache | None = None) -> Outcome:
        """Run the fitted policy on every query of a log."""
        chain = resolve_chain(table, self.chain_)

        def replay_part(part: QueryTable, part_cache: PredictorCache | None) -> Outcome:
            if part_cache is not None:
                return self._outcome(part, chain, part_cache.scores(part, chain))
            return self._replay_sequential(part, chain)

        return replay_chunked(table, cache, replay_part)
