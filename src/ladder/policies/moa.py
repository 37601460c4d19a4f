"""Pyramid MoA (seed 004, theory.md §5): a layer of cheap models votes, a gradient-boosted
classifier reads how much they agree, and the oracle is called only when the layer's
majority answer is likely wrong.

Layer 1 is several cheap models of the log, or several samples of one (the `samples`
column); every member runs on every query and its answer (each sample, where the log has
them) votes. Layer 2 is the oracle. Escalation follows Eq. 5 of theory.md §5,

    P_fail > C_esc / U_correct + (1 − P_oracle),

with U_correct = one quality unit and C_esc = λ × the oracle's mean training cost, which is
exactly the comparison of E[U_stop] = 1 − P_fail and E[U_esc] = P_oracle − λ·c_oracle under
the objective J = q − λ·c of theory §2 (layer 1 is paid either way). A direct threshold t
replaces the right-hand side, as in the seed's profiles.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from ladder.policies.base import Outcome, best_model
from ladder.predictors import CALIBRATIONS, QualityPredictor
from ladder.runlog.table import PADDING, QueryTable


class MoAUnavailable(ValueError):
    """The log cannot host a pyramid (no answers to vote on, or no cheap layer)."""


@dataclass(frozen=True)
class Barriers:
    """The two barriers of Eq. 5; escalate when P_fail exceeds their sum."""

    cost: float  # C_esc / U_correct
    imperfection: float  # 1 − P_oracle

    @property
    def total(self) -> float:
        return self.cost + self.imperfection


def escalation_barriers(lam: float, oracle_cost: float, p_oracle: float,
                        u_correct: float = 1.0) -> Barriers:
    """Eq. 5's barriers at trade-off λ: C_esc = λ·oracle_cost in quality units, so escalating
    wins exactly when it raises J = q − λ·c (theory §2)."""
    if lam < 0 or u_correct <= 0:
        raise ValueError("need λ ≥ 0 and U_correct > 0")
    return Barriers(cost=lam * oracle_cost / u_correct, imperfection=1.0 - p_oracle)


def layer_votes(table: QueryTable, members: Sequence[int]) -> np.ndarray:
    """(n, V) answer codes that vote: each member's samples where the log has them for that
    query, else its one answer; -1 a failed answer, PADDING an absent vote."""
    if table.answers is None:
        raise MoAUnavailable("the log has no 'answer' column, so layer 1 has nothing to vote on")
    blocks = []
    for m in members:
        if table.sample_codes is None or table.sample_codes.shape[2] == 0:
            blocks.append(table.answers[:, [m]])
            continue
        block = table.sample_codes[:, m, :].copy()
        none = (block == PADDING).all(axis=1)
        block[none, 0] = table.answers[none, m]
        blocks.append(block)
    return np.hstack(blocks)


def majority_vote(votes: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the position of the candidate (a member's own answer) with the most votes
    (ties: the earlier member) and its vote count. The winner is a member's answer, so its
    quality is that member's logged label; with one vote per member this is the plain
    majority. Missing candidates get count −1."""
    valid = candidates >= 0
    support = (votes[:, None, :] == candidates[:, :, None]).sum(axis=2)
    support = np.where(valid, support, -1)
    position = support.argmax(axis=1)
    return position, support[np.arange(len(votes)), position]


def _nan_stat(fn: object, a: np.ndarray) -> np.ndarray:
    """A NaN-ignoring row statistic; NaN (no warning) where a row has no value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(a, axis=1)  # type: ignore[operator]


FEATURES = ("agreement", "distinct_answers", "answer_entropy", "failed_share",
            "tokens_out_mean", "tokens_out_var", "logprob_mean", "logprob_min",
            "confidence_mean", "confidence_min")


def layer_features(table: QueryTable, members: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """(n, d) layer-1 features and their names: agreement rate with the majority, distinct
    answers, answer entropy (nats), share of failed answers, output length mean and variance,
    mean and min token log-probability, mean and min confidence, then per member whether it
    agrees with the majority, its confidence and its samples' top-answer share. NaN where
    the log lacks a signal (the boosted trees route missing values themselves)."""
    members = list(members)
    votes = layer_votes(table, members)
    position, support = majority_vote(votes, table.answers[:, members])
    cast = votes != PADDING
    n_votes = np.maximum(cast.sum(axis=1), 1)
    valid = votes >= 0
    same = (votes[:, :, None] == votes[:, None, :]) & valid[:, None, :]
    count = np.where(valid, same.sum(axis=2), 1)
    n_valid = valid.sum(axis=1)
    share = np.where(valid, count / np.maximum(n_valid, 1)[:, None], 1.0)
    entropy = np.where(n_valid > 0, -(np.log(share) * valid).sum(axis=1) / np.maximum(n_valid, 1),
                       np.nan)
    distinct = (valid / count).sum(axis=1)
    winner = table.answers[np.arange(table.n), np.asarray(members)[position]]
    answers = table.answers[:, members]
    agrees = np.where(answers >= 0, answers == winner[:, None], np.nan)
    signals = table.signals
    tokens = signals["tokens_out"][:, members]
    confidence = signals["confidence"][:, members]
    share_m = (table.sample_share[:, members] if table.sample_share is not None
               else np.full((table.n, len(members)), np.nan))
    X = np.column_stack([
        np.maximum(support, 0) / n_votes, distinct, entropy, (votes == -1).sum(axis=1) / n_votes,
        _nan_stat(np.nanmean, tokens), _nan_stat(np.nanvar, tokens),
        _nan_stat(np.nanmean, signals["logprob_mean"][:, members]),
        _nan_stat(np.nanmin, signals["logprob_min"][:, members]),
        _nan_stat(np.nanmean, confidence), _nan_stat(np.nanmin, confidence),
        agrees, confidence, share_m,
    ])
    names = list(FEATURES) + [f"{table.models[m]}:{kind}" for kind in
                              ("agrees", "confidence", "sample_share") for m in members]
    return X, names


def default_layers(table: QueryTable, oracle: str | None = None) -> tuple[str, list[tuple]]:
    """The oracle (given, else the most accurate model on `table`, ties to the cheaper) and the
    candidate layers 1: the cheapest-first prefixes of the other models (by mean cost on
    `table`) whose summed cost stays below the oracle's and that cast at least two votes.
    Raises MoAUnavailable when there is none."""
    if table.answers is None:
        raise MoAUnavailable("the log has no 'answer' column, so layer 1 has nothing to vote on")
    costs, qualities = table.mean_cost(), table.mean_quality()
    top = table.index(oracle) if oracle is not None else best_model(qualities, costs)
    others = [m for m in np.argsort(costs, kind="stable") if m != top]
    candidates = _prefixes(table, others, costs[top])
    if not candidates:
        raise MoAUnavailable(
            f"no cheap layer: the models cheaper than the oracle {table.models[top]} together "
            "cost more than it, or cast fewer than two votes (need two cheap models, or one "
            "with several samples)")
    return table.models[top], candidates


def _samples_per_query(table: QueryTable, m: int) -> int:
    """Most samples the model has on any query (0 without samples)."""
    if table.sample_codes is None:
        return 0
    return int((table.sample_codes[:, m, :] != PADDING).sum(axis=1).max(initial=0))


def _prefixes(table: QueryTable, others: list[int], budget: float) -> list[tuple[str, ...]]:
    """Cheapest-first prefixes of `others` cheaper in sum than `budget`, with ≥ 2 votes."""
    costs = table.mean_cost()
    out, spent, votes = [], 0.0, 0
    for i, m in enumerate(others):
        spent += costs[m]
        if spent >= budget:
            break
        votes += max(1, _samples_per_query(table, m))
        if votes >= 2:
            out.append(tuple(table.models[j] for j in others[: i + 1]))
    return out


@dataclass(frozen=True)
class FittedLayer:
    """One candidate layer 1 fitted on the training table: its P_fail classifier and the
    out-of-fold P_fail of every training query (shared by every λ of a sweep)."""

    members: tuple[str, ...]
    predictor: QualityPredictor
    oof: np.ndarray


def layer_answer(table: QueryTable, members: Sequence[int]) -> np.ndarray:
    """Model index of the member whose answer wins layer 1's vote, per query."""
    members = np.asarray(members)
    position, _ = majority_vote(layer_votes(table, members), table.answers[:, members])
    return members[position]


def pyramid_outcome(table: QueryTable, members: Sequence[int], oracle: int,
                    escalate: np.ndarray) -> Outcome:
    """Replay: layer 1's majority answer, or the oracle's where `escalate`; every member is
    paid on every query, the oracle where escalated."""
    members = list(members)
    rows = np.arange(table.n)
    chosen = np.where(escalate, oracle, layer_answer(table, members))
    dearest = members[int(np.argmax(table.mean_cost()[members]))]
    cost = table.cost[:, members].sum(axis=1) + np.where(escalate, table.cost[:, oracle], 0.0)
    return Outcome(chosen=chosen, last_run=np.where(escalate, oracle, dearest),
                   quality=table.quality[rows, chosen], cost=cost)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    keep = ~np.isnan(y)
    y, p = y[keep], np.clip(p[keep], 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_layer(table: QueryTable, members: Sequence[str], calibration: str | None = None,
              random_state: int = 0) -> FittedLayer:
    """P_fail = P(layer 1's majority wrong) by gradient-boosted trees (ladder's 'gbt'
    predictor: cross-fitted calibration, out-of-fold training predictions). calibration None:
    sigmoid or isotonic, whichever has the lower out-of-fold log-loss on `table`."""
    index = [table.index(m) for m in members]
    X, _ = layer_features(table, index)
    fail = 1.0 - table.quality[np.arange(table.n), layer_answer(table, index)]
    if np.isnan(fail).all():
        raise MoAUnavailable("no labelled training query to fit P_fail on")
    fits = [QualityPredictor("gbt", calibration=c, random_state=random_state).fit(X, fail)
            for c in ((calibration,) if calibration else CALIBRATIONS)]
    best = min(fits, key=lambda f: _log_loss(fail, f.oof_))
    return FittedLayer(tuple(members), best, best.oof_)


class PyramidMoA(BaseEstimator):
    """Layer 1 votes, P_fail decides, the oracle answers the escalated queries.

    lam: trade-off λ of J = q − λ·c; the barrier is Eq. 5's. threshold: instead, escalate
    when P_fail > threshold (the seed's t). layer1 / oracle: model names (default: the oracle
    is the most accurate model on train, and layer 1 the cost-ordered prefix of cheaper
    models, summing to less than the oracle's cost, with the best out-of-fold training
    objective at this λ). calibration: of P_fail (None: chosen on training folds).
    """

    family = "moa"

    def __init__(self, lam: float = 0.0, threshold: float | None = None,
                 layer1: Sequence[str] | None = None, oracle: str | None = None,
                 calibration: str | None = None, random_state: int = 0):
        self.lam = lam
        self.threshold = threshold
        self.layer1 = layer1
        self.oracle = oracle
        self.calibration = calibration
        self.random_state = random_state

    def candidate_layers(self, table: QueryTable) -> tuple[str, list[tuple[str, ...]]]:
        """The oracle and the layers 1 the fit chooses among (checked against the log)."""
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.lam < 0:
            raise ValueError(f"λ must be ≥ 0, got {self.lam}")
        if self.layer1 is None:
            return default_layers(table, self.oracle)
        oracle = self.oracle or default_layers(table)[0]
        layer = tuple(self.layer1)
        table.select_models([*layer, oracle])  # every name known, none repeated
        if sum(max(1, _samples_per_query(table, table.index(m))) for m in layer) < 2:
            raise MoAUnavailable(f"layer 1 {list(layer)} casts fewer than two votes")
        return oracle, [layer]

    def fit(self, table: QueryTable, cache: object = None) -> PyramidMoA:
        """Fit every candidate layer's P_fail on `table`, then adopt the best one."""
        oracle, candidates = self.candidate_layers(table)
        layers = [fit_layer(table, c, self.calibration, self.random_state) for c in candidates]
        return self.adopt(table, oracle, layers)

    def adopt(self, table: QueryTable, oracle: str, layers: Sequence[FittedLayer]) -> PyramidMoA:
        """Set the rule from already fitted layers (a λ sweep fits them once): the barriers
        from the training table, and the layer with the best out-of-fold J_λ (λ = 0 under a
        direct threshold) on it."""
        o = table.index(oracle)
        labelled = ~np.isnan(table.quality[:, o])
        self.oracle_ = oracle
        self.p_oracle_ = float(table.quality[labelled, o].mean())
        self.oracle_cost_ = float(table.cost[:, o].mean())
        barriers = escalation_barriers(self.lam, self.oracle_cost_, self.p_oracle_)
        self.cost_barrier_ = barriers.cost
        self.imperfection_barrier_ = barriers.imperfection
        self.barrier_ = barriers.total if self.threshold is None else float(self.threshold)
        lam = self.lam if self.threshold is None else 0.0
        outcomes = [pyramid_outcome(table, [table.index(m) for m in layer.members], o,
                                    layer.oof > self.barrier_) for layer in layers]
        scored = [_labelled_objective(out, lam) for out in outcomes]
        best = int(np.argmax(scored))
        self.candidates_ = tuple(layer.members for layer in layers)
        self.candidate_objectives_ = tuple(scored)
        self.layer1_ = layers[best].members
        self.predictor_ = layers[best].predictor
        self.held_out_ = outcomes[best]
        return self

    def at(self, lam: float = 0.0, threshold: float | None = None) -> PyramidMoA:
        """The same fitted layer under another rule (the classifier does not depend on it):
        the barriers of λ, or a direct threshold, without refitting."""
        policy = PyramidMoA(lam, threshold, self.layer1_, self.oracle_, self.calibration,
                            self.random_state)
        policy.__dict__.update({k: v for k, v in vars(self).items() if k.endswith("_")})
        barriers = escalation_barriers(lam, self.oracle_cost_, self.p_oracle_)
        policy.cost_barrier_ = barriers.cost
        policy.barrier_ = barriers.total if threshold is None else float(threshold)
        del policy.held_out_  # it was judged under the old rule
        return policy

    @property
    def chain_(self) -> tuple[str, ...]:
        """Layer 1's members, then the oracle (how reports name the policy)."""
        return (*self.layer1_, self.oracle_)

    def p_fail(self, table: QueryTable) -> np.ndarray:
        """P(layer 1's majority answer is wrong) for each query of `table`."""
        X, _ = layer_features(table, [table.index(m) for m in self.layer1_])
        with threadpool_limits(1):
            return self.predictor_.predict(X)

    def escalate(self, table: QueryTable) -> np.ndarray:
        """Call the oracle (True) or return layer 1's majority answer, per query."""
        return self.p_fail(table) > self.barrier_

    def replay(self, table: QueryTable, cache: object = None) -> Outcome:
        """Run the fitted pyramid on every query of a log."""
        members = [table.index(m) for m in self.layer1_]
        return pyramid_outcome(table, members, table.index(self.oracle_), self.escalate(table))


def _labelled_objective(outcome: Outcome, lam: float) -> float:
    """J_λ over the queries with a label (unlabelled rows never score)."""
    keep = ~np.isnan(outcome.quality)
    return float(outcome.quality[keep].mean() - lam * outcome.cost[keep].mean())


def fit_sweep(table: QueryTable, lambdas: Sequence[float], **params: object) -> list[PyramidMoA]:
    """One PyramidMoA per λ, every candidate layer fitted once and shared."""
    template = PyramidMoA(**params)  # type: ignore[arg-type]
    oracle, candidates = template.candidate_layers(table)
    layers = [fit_layer(table, c, template.calibration, template.random_state)
              for c in candidates]
    return [PyramidMoA(lam, **params).adopt(table, oracle, layers)  # type: ignore[arg-type]
            for lam in lambdas]
