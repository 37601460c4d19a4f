"""The online cascade (theory.md §6): partial feedback, exploration, regret bookkeeping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ladder.experiments.regret import (
    Ordering,
    PartialFeedback,
    RegretRun,
    growth_exponent,
    sqrt_log_ratio,
    summary,
)
from ladder.online import OnlineCascade, exploration_rate
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable

LAM = 1.0


def synthetic(n: int, seed: int = 0) -> QueryTable:
    """Two models: a cheap one whose confidence is its probability of being right, and a
    dear one right 90% of the time. Best rule at λ = 1: stop when confidence > 0.6."""
    rng = np.random.default_rng(seed)
    conf = np.column_stack([rng.uniform(size=n), rng.uniform(0.85, 0.95, size=n)])
    quality = (rng.uniform(size=(n, 2)) < np.column_stack([conf[:, 0], np.full(n, 0.9)]))
    signals = {name: np.full((n, 2), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = conf
    return QueryTable(query_ids=np.array([f"s{seed}q{i}" for i in range(n)], dtype=object),
                      models=("small", "large"), quality=quality.astype(float),
                      cost=np.tile([0.01, 0.3], (n, 1)), signals=signals)


def learner(seed: int) -> OnlineCascade:
    return OnlineCascade(["small", "large"], LAM, c=1.0, refit_every=20, random_state=seed)


def test_exploration_schedule():
    assert exploration_rate(1, 1.0) == 1.0
    assert exploration_rate(4, 1.0) == pytest.approx(0.5)
    assert exploration_rate(100, 2.0) == pytest.approx(0.2)
    assert exploration_rate(3, 0.0) == 0.0
    assert learner(0).epsilon(16) == pytest.approx(0.25)


def test_regret_bookkeeping_by_hand():
    best = np.array([1.0, 0.5, 0.8, 0.2])
    reward = np.array([0.5, 0.5, 0.3, 0.4])
    run = RegretRun([Ordering(reward, best, np.array([2, 3, 5, 6]))], best_objective=0.625)
    np.testing.assert_allclose(run.regret[0], [0.5, 0.5, 1.0, 0.8])
    np.testing.assert_allclose(sqrt_log_ratio(run.regret)[0],
                               [0.5 / (np.sqrt(2) * np.log(2)), 1.0 / (np.sqrt(3) * np.log(3)),
                                0.8 / (2 * np.log(4))])
    s = summary(run)
    assert s["regret_per_query"][0] == pytest.approx(0.2)
    assert s["relative"][0] == pytest.approx(0.2 / 0.625)
    assert s["labels_per_query"] == pytest.approx(1.5)
    t = np.arange(1, 201)
    assert growth_exponent(np.array([3 * t ** 0.5]))[0] == pytest.approx(0.5)
    assert np.isnan(growth_exponent(np.array([-t * 1.0])))[0]


def test_decide_update_api():
    online = learner(0)
    online.observe("a", 0, 0.01, {"confidence": 0.9})
    assert online.decide("a") is False  # nothing fitted yet: escalate for the labels
    with pytest.raises(ValueError, match="did not run"):
        online.update("a", "large", 1.0)
    with pytest.raises(ValueError, match="rung 0 observed after 1"):
        online.observe("a", 0, 0.01)
    online.observe("a", 1, 0.3, {"confidence": 0.9})
    assert online.decide("a") is True  # the last rung always stops
    assert online.ran("a") == ("small", "large")
    online.update("a", "small", 1.0)
    online.update("a", "large", 0.0)
    assert online.n_labels_ == 2 and online.predictors_ is None


def _served_cells(table: QueryTable, seed: int) -> tuple[Ordering, OnlineCascade, np.ndarray]:
    online = learner(seed)
    env = PartialFeedback(table, tuple(online.chain))
    order = np.random.default_rng(seed).permutation(table.n)
    rewards = np.array([env.serve(online, row)[0] for row in order])
    h = online.history_
    ran = np.zeros((table.n, 2), dtype=bool)
    for qid, i in h.rows.items():
        ran[list(table.query_ids).index(qid), : h.ran[i]] = True
    return rewards, online, ran


class Guarded(np.ndarray):
    """An array whose poisoned cells raise when read one at a time."""

    poison: np.ndarray

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and all(
                isinstance(k, (int, np.integer)) for k in key) and self.poison[key]:
            raise AssertionError(f"read the unrun cell {key}")
        return super().__getitem__(key)


def guarded(values: np.ndarray, poison: np.ndarray) -> Guarded:
    out = values.view(Guarded)
    out.poison = poison
    return out


def test_never_reads_an_unrun_model():
    table = synthetic(300)
    rewards, online, ran = _served_cells(table, seed=3)
    assert 0 < ran[:, 1].sum() < table.n  # some queries stopped early: there are unrun cells
    unrun = ~ran
    signals = {k: guarded(np.where(unrun, 1e9, v), unrun) for k, v in table.signals.items()}
    poisoned = replace(table, quality=guarded(np.where(unrun, np.nan, table.quality), unrun),
                       cost=guarded(np.where(unrun, 1e9, table.cost), unrun), signals=signals)
    again, online_again, ran_again = _served_cells(poisoned, seed=3)
    np.testing.assert_array_equal(ran_again, ran)
    np.testing.assert_array_equal(again, rewards)
    np.testing.assert_array_equal(online_again.thresholds_, online.thresholds_)
    assert np.isfinite(again).all()


def test_learner_improves_with_labels():
    stream, fresh = synthetic(400, seed=1), synthetic(1000, seed=2)
    for seed in range(2):
        online = learner(seed)
        env, judged = (PartialFeedback(t, tuple(online.chain)) for t in (stream, fresh))
        rewards = [env.serve(online, row)[0]
                   for row in np.random.default_rng(seed).permutation(stream.n)]
        online.c, online.next_refit_ = 0.0, np.inf
        frozen = np.mean([judged.serve(online, row, label=False)[0] for row in range(fresh.n)])
        # always escalating: 0.9 − 0.31 = 0.59; the best threshold (0.6): 0.67
        assert frozen > 0.64, frozen
        assert 0.45 < online.thresholds_[0] < 0.75
        assert np.mean(rewards[-200:]) > np.mean(rewards[:50])


def test_refit_waits_for_labels_once_the_warm_prior_fades():
    """The prior counts for warm_weight queries; after that a rung with no own label (here:
    the dear model never ran) must defer the refit, not fit a predictor on no rows."""
    prior = synthetic(50, seed=1)
    online = OnlineCascade(["small", "large"], LAM, warm_start=prior, warm_weight=3,
                           random_state=0)
    assert online.predictors_ is not None  # fitted on the prior at once
    env = PartialFeedback(synthetic(10, seed=2), ("small", "large"))
    for row in range(5):
        env._observe(online, row, 0)
        online.update(env.table.query_ids[row], "small", float(env.table.quality[row, 0]))
    assert not online._labelled_everywhere()
    online.refit_every, online.next_refit_ = 1, 0
    online.update(env.table.query_ids[0], "small", 1.0)  # would have raised before the fix
