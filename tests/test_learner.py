"""The shared online learner: replicas learn from every replica's feedback in the store."""

from __future__ import annotations

import asyncio
from copy import copy

import numpy as np
import pandas as pd
import pytest

from ladder.backends.fake import FakeBackend
from ladder.config import ConfigError, OnlineSpec, Price
from ladder.rung import Rung
from ladder.runlog import write_runlog
from ladder.runtime import Cascade, live_table
from ladder.server.learner import LearnedCascade, SharedLearner
from ladder.server.records import FeedbackRecord
from ladder.server.store import Store
from ladder.tasks import Item

CHAIN = ["small", "large"]


def spec(**extra) -> OnlineSpec:
    settings = {"chain": CHAIN, "lam": 1.0, "exploration": 0.0, "window": 40,
                "refit_every": 10}
    return OnlineSpec(**{**settings, **extra})


def stops_at_small(policy: LearnedCascade, confidence: float = 0.9) -> bool:
    """The policy's decision after the cheap rung for one fixed query."""
    table = live_table(Item("fixed", "What is 2 + 2?"), CHAIN, policy.inputs_)
    table.signals["confidence"][0, 0] = confidence
    table.signals["logprob_mean"][0, 0], table.signals["logprob_min"][0, 0] = -0.2, -1.0
    table.signals["tokens_out"][0, 0] = 4.0
    return bool(policy.step(table, 0).stop[0])


def serve(store: Store, make_request, start: int, n: int, small_right: bool) -> None:
    """n requests, half answered by the cheap model alone, half by both; the cheap model
    is right (or wrong) on all but one, the dear one the other way round; every request
    labelled through `store`."""
    rng = np.random.default_rng(start)

    async def label_all() -> None:
        for i in range(start, start + n):
            alone = i % 2 == 0
            models = ("small",) if alone else ("small", "large")
            store.submit(make_request(f"q{i}", models=models, created=float(i),
                                      confidence=float(rng.uniform())))
            right = small_right if alone else not small_right
            if i in (start, start + 1):
                right = not right  # one label of each kind on each rung
            assert await store.add_feedback(FeedbackRecord(f"q{i}", float(right), i, None))

    asyncio.run(label_all())


@pytest.mark.parametrize("shared", ["sqlite", "postgresql"])
def test_feedback_through_one_replica_changes_the_other(shared, tmp_path, make_request,
                                                        request):
    url = (f"sqlite:///{tmp_path / 'gw.db'}" if shared == "sqlite"
           else request.getfixturevalue("postgres_url"))
    with Store(url) as store_a, Store(url) as store_b:
        learner_a = SharedLearner("online", spec(), tmp_path)
        learner_b = SharedLearner("online", spec(), tmp_path)
        assert not learner_b.policy.fitted and not stops_at_small(learner_b.policy)

        serve(store_a, make_request, 0, 40, small_right=True)
        assert asyncio.run(learner_b.sync(store_b))
        assert learner_b.policy.thresholds_ is not None and learner_b.policy.served_ == 40
        assert stops_at_small(learner_b.policy)  # the cheap model is right: stop there
        assert not asyncio.run(learner_b.sync(store_b))  # nothing new: no refit
        first = learner_b.policy.thresholds_.copy()

        serve(store_a, make_request, 40, 40, small_right=False)  # the window moves on
        assert asyncio.run(learner_b.sync(store_b))
        assert not stops_at_small(learner_b.policy)  # now it is wrong: escalate
        assert learner_b.policy.thresholds_[0] != first[0]
        assert asyncio.run(learner_a.sync(store_a))  # A learns the same from the same rows
        np.testing.assert_allclose(learner_a.policy.thresholds_, learner_b.policy.thresholds_)


def test_exploration_overrides_stops_at_the_shared_rate(tmp_path, make_request):
    with Store(f"sqlite:///{tmp_path / 'gw.db'}") as store:
        learner = SharedLearner("online", spec(exploration=1.0), tmp_path)
        serve(store, make_request, 0, 40, small_right=True)
        asyncio.run(learner.sync(store))
    policy = learner.policy
    quiet = copy(policy)
    quiet.c = 0.0
    assert policy.t_ == 40 and stops_at_small(quiet)  # the rule itself says stop
    stops = np.mean([stops_at_small(policy) for _ in range(400)])
    expected = 1 - np.mean([min(1, 1 / np.sqrt(t)) for t in range(41, 441)])  # ε_t, t = 41…
    assert stops == pytest.approx(expected, abs=0.04) and policy.t_ == 440


def test_a_cascade_runs_the_learned_policy(tmp_path, make_request):
    """The runtime drives a LearnedCascade like any fitted cascade."""
    with Store(f"sqlite:///{tmp_path / 'gw.db'}") as store:
        learner = SharedLearner("online", spec(), tmp_path)
        rungs = {m: Rung(m, FakeBackend({"2 + 2": "4"}, skill=0.9, seed=i), Price())
                 for i, m in enumerate(CHAIN)}
        cascade = Cascade(rungs, learner.policy)
        assert cascade.decode("What is 2 + 2?").stage == 1  # unfitted: climbs
        serve(store, make_request, 0, 40, small_right=True)
        asyncio.run(learner.sync(store))
        cascade.policy = learner.policy
        result = cascade.decode("What is 2 + 2?")
        cascade.close()
    assert result.trace[0].predicted_quality is not None


def test_warm_start_fits_at_once_and_bad_logs_are_config_errors(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"query_id": f"w{i}", "model": m, "quality": float(rng.uniform() < p),
             "cost": c, "confidence": float(rng.uniform())}
            for i in range(60) for m, p, c in (("small", 0.9, 0.01), ("large", 0.5, 0.1))]
    write_runlog(pd.DataFrame(rows), tmp_path / "warm.jsonl")
    learner = SharedLearner("online", spec(warm_start="warm.jsonl"), tmp_path)
    assert learner.policy.fitted
    with pytest.raises(ConfigError, match="warm_start"):
        SharedLearner("online", spec(warm_start="missing.jsonl"), tmp_path)


def test_labels_on_the_cheap_stage_teach_an_escalating_policy_to_stop(tmp_path, make_request):
    """Every request climbed, so the answers returned are the dear model's: labelling only
    those cannot show that the cheap rung would have sufficed. A grader that also labels the
    cheap stage's answer (feedback naming its model) can."""
    with Store(f"sqlite:///{tmp_path / 'gw.db'}") as store:
        learner = SharedLearner("online", spec(), tmp_path)

        async def serve_and_label(with_cheap: bool) -> None:
            for i in range(40):
                if not with_cheap:
                    store.submit(make_request(f"q{i}", created=float(i),
                                              confidence=0.5 + i / 100))
                    assert await store.add_feedback(FeedbackRecord(f"q{i}", float(i % 3 > 0),
                                                                   i, None))
                else:  # the cheap model was right, bar one, wherever it ran
                    assert await store.add_feedback(
                        FeedbackRecord(f"q{i}", float(i != 5), 40 + i, None, "small"))

        asyncio.run(serve_and_label(False))
        asyncio.run(learner.sync(store))
        assert not stops_at_small(learner.policy)  # no label on the cheap rung: climbs
        asyncio.run(serve_and_label(True))
        assert asyncio.run(learner.sync(store))
        assert stops_at_small(learner.policy)
        frame = store.export_runlog(tmp_path / "out.jsonl")
        assert frame == 80  # 40 requests × 2 stages, every stage now labelled


def test_feedback_naming_a_model_must_name_a_stage_that_ran(tmp_path, make_request):
    with Store(f"sqlite:///{tmp_path / 'gw.db'}") as store:
        store.submit(make_request("q0", models=("small",)))

        async def label(model: str | None) -> bool:
            return await store.add_feedback(FeedbackRecord("q0", 1.0, 0, None, model))

        assert asyncio.run(label("small")) and asyncio.run(label(None))
        assert not asyncio.run(label("large"))  # it never ran on q0
        served = next(store.served())
        assert served.labels == {"small": 1.0} and served.quality == 1.0
