"""Routed cascades: a router picks the first rung, a threshold cascade climbs from there."""

from __future__ import annotations

import numpy as np
import pytest

from ladder.policies.chains import BestChain
from ladder.policies.persist import load_policy, save_policy
from ladder.policies.routed import RoutedCascade, scatter
from ladder.policies.router import Router, RouterCache
from ladder.policies.stages import PredictorCache
from ladder.runlog import QueryTable
from ladder.runlog.table import SIGNAL_COLUMNS
from test_policies import assert_same_outcome
from test_router import TOPICS  # topic -> P(correct) of (cheap, dear)

LAM = 0.02  # the dear model's call is worth 0.2 of quality


def make_log(n: int, seed: int) -> QueryTable:
    """The topic (in the prompt) says which model can answer; the cheap model's confidence
    says whether it did. A router sends algebra up at once; a cascade catches the rest."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    which = rng.integers(0, len(topics), n)
    prompts = [" ".join(rng.choice(topics[t].split(), 6)) + f" question {rng.integers(1000)}"
               for t in which]
    skill = np.array([TOPICS[topics[t]] for t in which])
    quality = (rng.random((n, 2)) < skill).astype(float)
    signals = {name: np.full((n, 2), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = np.clip(0.35 * quality + 0.65 * rng.random((n, 2)), 0, 1)
    return QueryTable(
        query_ids=np.array([f"q{seed}-{i}" for i in range(n)], dtype=object),
        models=("cheap", "dear"), quality=quality, cost=np.tile([3.0, 10.0], (n, 1)),
        signals=signals, prompt_len=np.array([float(len(p)) for p in prompts]),
        prompts=np.array(prompts, dtype=object),
    )


@pytest.fixture(scope="module")
def fitted():
    train, test = make_log(300, 0), make_log(400, 1)
    cache, routers = PredictorCache(train), RouterCache(train, ["logistic-text"])
    routed = RoutedCascade(LAM, variants=["logistic-text"]).fit(train, cache, routers)
    router = Router(LAM, ["logistic-text"]).fit(train, routers)
    cascade = BestChain("threshold", LAM).fit(train, cache)
    return train, test, cache, routed, router, cascade


def test_routed_contains_the_router_and_the_cascade_on_train_folds(fitted):
    _, _, _, routed, router, cascade = fitted
    assert routed.train_objective_ >= cascade.train_objective_ - 1e-12
    assert routed.train_objective_ >= router.held_out_.objective(LAM) - 1e-12


def test_routed_beats_both_where_each_has_half_the_signal(fitted):
    _, test, cache, routed, router, cascade = fitted
    assert routed.router_ is not None, "routing should win on this log"
    assert routed.choice_["chains"]["cheap"] == ["cheap", "dear"]  # climbs from the cheap start
    j = {name: policy.replay(test, cache).objective(LAM)
         for name, policy in (("routed", routed), ("router", router), ("cascade", cascade))}
    assert j["routed"] > j["router"] + 0.01 and j["routed"] > j["cascade"] + 0.01, j


def test_routed_pays_only_from_its_start(fitted):
    _, test, cache, routed, _, _ = fitted
    outcome = routed.replay(test, cache)
    starts = routed.starts(test)
    went_dear_directly = starts == 1
    assert went_dear_directly.any() and (~went_dear_directly).any()
    np.testing.assert_array_equal(outcome.cost[went_dear_directly], 10.0)
    assert set(outcome.cost[~went_dear_directly]) <= {3.0, 13.0}


def test_scatter_puts_each_piece_back_in_its_rows(fitted):
    _, test, cache, routed, _, _ = fitted
    whole = routed.plans_["cheap"].replay(test, cache)
    rows = [np.arange(0, test.n, 2), np.arange(1, test.n, 2)]
    pieces = [(r, routed.plans_["cheap"].replay(test.rows(r), cache)) for r in rows]
    assert_same_outcome(scatter(test.n, pieces), whole)


def test_save_and_load_round_trip(fitted, tmp_path):
    _, test, _, routed, _, _ = fitted
    loaded = load_policy(save_policy(routed, tmp_path / "routed.json"))
    assert isinstance(loaded, RoutedCascade) and set(loaded.plans_) == set(routed.plans_)
    assert_same_outcome(loaded.replay(test), routed.replay(test))
