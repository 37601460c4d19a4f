"""The live cascade: decisions from the engine's policies, traces, sync/async forms, and
exact equivalence with the offline evaluation when driven by logged outputs."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from ladder.backends.fake import FakeBackend
from ladder.backends.replay import ReplayBackend
from ladder.collect import collect
from ladder.config import ConfigError, Price
from ladder.fit import fit_policy
from ladder.policies.baselines import FixedModel, Oracle
from ladder.policies.moa import PyramidMoA
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import Router
from ladder.rung import Rung
from ladder.runlog import QueryTable, load_runlog
from ladder.runtime import Cascade, policy_chain
from ladder.tasks import Item, TaskError


def _items(n: int = 160) -> list[Item]:
    rng = np.random.default_rng(1)
    items = []
    for k in range(n):
        options = tuple(f"opt{k}-{j}" for j in range(4))
        items.append(Item(f"q{k}", f"question number {k}?", "choice", options,
                          options[int(rng.integers(4))], {"domain": "toy"}))
    return items


def _rungs(items: list[Item]) -> dict[str, Rung]:
    truths = {i.prompt: i.reference for i in items}
    return {
        "small": Rung("small", FakeBackend(truths, skill=0.55, seed=1),
                      Price(input_per_mtok=1.0)),
        "large": Rung("large", FakeBackend(truths, skill=0.9, seed=2),
                      Price(input_per_mtok=10.0)),
    }


@pytest.fixture(scope="module")
def fake_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Item], QueryTable]:
    items = _items()
    path = tmp_path_factory.mktemp("log") / "log.jsonl"
    summary = collect(items, _rungs(items), path)
    assert summary.written == 2 * len(items)
    return items, QueryTable.from_runlog(load_runlog(path))


def test_collected_log_has_signals_and_costs(fake_log) -> None:
    table = fake_log[1]
    assert table.models == ("small", "large")  # ordered by mean cost
    assert np.all(table.cost[:, 1] > table.cost[:, 0])
    assert table.quality[:, 1].mean() > table.quality[:, 0].mean()
    assert np.all((table.signals["confidence"] > 0) & (table.signals["confidence"] <= 1))
    assert table.answers is not None and table.prompt_len is not None


@pytest.mark.parametrize("family", ["threshold", "dp"])
def test_live_decisions_equal_offline_replay(fake_log, family: str) -> None:
    items, table = fake_log
    lam = 0.3 / table.cost[:, 1].mean()
    policy = fit_policy(table, family, lam, chain=["small", "large"])
    offline = policy.replay(table)
    with Cascade(_rungs(items), policy) as cascade:
        results = cascade.decode_many(items, progress=False)
    by_id = {q: k for k, q in enumerate(table.query_ids)}
    for item, result in zip(items, results, strict=True):
        k = by_id[item.id]
        assert result.model == table.models[offline.chosen[k]]
        assert result.trace[-1].model == table.models[offline.last_run[k]]
        assert math.isclose(result.cost, offline.cost[k], rel_tol=1e-12)
        assert result.quality == offline.quality[k]
    stages = {r.stage for r in results}
    assert stages == {0, 1}, "the fitted cascade should both stop and climb on this log"


def test_trace_holds_signals_predictions_and_decisions(fake_log) -> None:
    items, table = fake_log
    policy = fit_policy(table, "dp", 0.3 / table.cost[:, 1].mean(), chain=["small", "large"])
    with Cascade(_rungs(items), policy) as cascade:
        result = next(r for r in (cascade.decode(i) for i in items) if r.stage == 1)
    first, second = result.trace
    assert first.decision == "escalate" and second.decision == "stop"
    assert first.continuation_value is not None and second.continuation_value is None
    assert 0 <= first.predicted_quality <= 1
    assert set(first.signals) >= {"confidence", "logprob_mean", "logprob_min", "tokens_out"}
    assert result.cost == pytest.approx(first.cost + second.cost)
    assert result.overhead_s >= 0 and result.latency_s >= result.overhead_s


def test_async_form_and_concurrency(fake_log) -> None:
    items, table = fake_log
    policy = fit_policy(table, "threshold", 0.0, chain=["small", "large"])
    rungs = _rungs(items)
    for rung in rungs.values():
        rung.backend.latency_s = 0.02
    cascade = Cascade(rungs, policy)
    results = asyncio.run(cascade.adecode_many(items[:20], concurrency=10, progress=False))
    assert [r.answer for r in results] == [cascade.decode(i).answer for i in items[:20]]
    assert 1 < rungs["small"].backend.max_in_flight <= 10


def test_prompt_string_uses_the_config_task_type(fake_log) -> None:
    items, table = fake_log
    policy = FixedModel("large").fit(table)
    with Cascade(_rungs(items), policy, task_type="short") as cascade:
        result = cascade.decode("What is the capital of France?")
    assert result.model == "large" and result.stage == 0 and result.quality is None
    assert result.trace[0].decision == "stop"
    with Cascade(_rungs(items), policy, task_type="choice") as cascade, \
            pytest.raises(TaskError, match="no options"):
        cascade.decode("Which one?")


def test_policy_models_must_be_configured(fake_log) -> None:
    items, table = fake_log
    policy = fit_policy(table, "threshold", 0.0, chain=["small", "large"])
    with pytest.raises(ConfigError, match="no model named large"):
        Cascade({"small": _rungs(items)["small"]}, policy)
    with pytest.raises(ConfigError, match="cannot run live"):
        Cascade(_rungs(items), Oracle(0.0).fit(table))


@pytest.fixture(scope="module")
def zellinger_mmlu(shared_data) -> tuple:
    folder = shared_data / "zellinger-cascades"
    df = load_runlog(folder)
    table = QueryTable.from_runlog(df, benchmark="mmlu")
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    prompts = df.drop_duplicates("query_id").set_index("query_id")["prompt"]
    items = [Item(str(q), str(prompts[q]), "short") for q in test.query_ids]
    assert not prompts[list(test.query_ids)].isna().any()
    return folder, train, test, items


CHAIN = ["llama3.2-3b", "gpt-4o-mini", "llama3.1-8b", "qwen2.5-72b-instruct", "llama3.1-405b"]


def _live_policy(family: str, train: QueryTable) -> object:
    if family in ("threshold", "dp"):
        return fit_policy(train, family, lam=300.0, chain=CHAIN)
    if family == "router":
        return Router(300.0, variants=["logistic-text"]).fit(train)
    if family == "routed":
        return RoutedCascade(300.0, max_stages=2, alphas=(1.0,), start_prices=(1.0, 4.0),
                             variants=["logistic-text"]).fit(train.select_models(CHAIN))
    return PyramidMoA(100.0, layer1=["llama3.2-1b", "llama3.2-3b", "llama3.1-8b"],
                      oracle="llama3.1-405b").fit(train)


@pytest.mark.parametrize("family", ["threshold", "dp", "router", "routed", "moa"])
def test_replay_equivalence_on_zellinger_mmlu(zellinger_mmlu, family: str) -> None:
    """The runtime driven by logged outputs makes exactly the offline evaluation's decisions
    and pays exactly its costs, for every family that runs live."""
    folder, train, test, items = zellinger_mmlu
    policy = _live_policy(family, train)
    offline = policy.replay(test)
    rungs = {m: Rung(m, ReplayBackend(folder, m, "zellinger"), Price())
             for m in policy_chain(policy)}
    with Cascade(rungs, policy) as cascade:
        results = cascade.decode_many(items, concurrency=16, progress=False)
    chosen = np.array([test.index(r.model) for r in results])
    last = np.array([max(test.index(t.model) for t in r.trace) for r in results])
    np.testing.assert_array_equal(chosen, offline.chosen)
    np.testing.assert_array_equal(last, offline.last_run)
    np.testing.assert_allclose([r.cost for r in results], offline.cost, rtol=1e-12)
    assert np.mean([r.quality for r in results]) == pytest.approx(offline.mean_quality)
    assert len(set(last.tolist())) >= 2, "the check is vacuous if every query stops at once"
    if family in ("router", "routed"):  # every query was routed (routed: it chose to route)
        assert all(r.route is not None for r in results)
    if family == "moa":
        assert {r.pyramid["escalate"] for r in results} == {True, False}


def test_replay_backend_refuses_unknown_queries_and_models(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    pd.DataFrame({"query_id": ["a", "a"], "model": ["m1", "m2"], "quality": [1, 0],
                  "cost": [1.0, 2.0]}).to_json(log, orient="records", lines=True)
    from ladder.backends.base import BackendError

    with pytest.raises(BackendError, match="not in"):
        ReplayBackend(log, "m3")
    backend = ReplayBackend(log, "m1")
    output = asyncio.run(backend.answer(Item("a", "x")))
    assert output.cost == 1.0 and output.quality == 1.0 and output.answer is None
    with pytest.raises(BackendError, match="no row"):
        asyncio.run(backend.answer(Item("b", "x")))
    with pytest.raises(BackendError, match="cannot generate"):
        asyncio.run(backend.generate("x"))
