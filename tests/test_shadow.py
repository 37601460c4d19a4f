"""Shadow runs in the gateway: after a cascade's response, the rungs it skipped run and a
judge labels every rung; the labels are feedback with their source, never a delay or a
change to the answer, never a made-up label; dropped under load and over budget."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from gateway_setup import gateway_config
from ladder.backends.base import (
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    OptionScores,
    Usage,
)
from ladder.cli import app as cli
from ladder.config import Config, Price, config_from_dict
from ladder.rung import Rung, rungs_from_config
from ladder.runlog import load_runlog
from ladder.runtime import Result
from ladder.server.app import create_app, with_shadow_rate
from ladder.server.protocol import ChatCompletionRequest
from ladder.server.records import SHADOW, FeedbackRecord, ShadowRecord
from ladder.server.serving import Gateway
from ladder.server.shadow import Shadow
from ladder.server.store import Store

REFERENCE = {"reference": "big", "rate": 1.0, "max_pending": 100}  # agreement with big, always


def ask(k: int, model: str = "balanced", **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": f"What is {k} + {k}?"}],
         **extra})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fakes' tasks and log, collected once (gateway_setup), and a third fake model
    that may judge."""
    folder = tmp_path_factory.mktemp("shadow")
    gateway_config(folder)
    return folder


def configure(base: Path, folder: Path, **server: object) -> Config:
    data = yaml.safe_load((base / "ladder.yaml").read_text())
    data["models"].append({"name": "judge", "backend": "fake"})
    data["server"].update({"database": f"sqlite:///{folder / 'gw.db'}", "sync_s": 0.05,
                           **server})
    return config_from_dict(data, base)


class Judging(Backend):
    """A judge model that fails (a backend error), hangs, or answers garbage."""

    scores_options = False  # it answers in words

    def __init__(self, how: str):
        self.how = how

    async def generate(self, prompt: str, *, max_tokens: int = 32, stop=("\n",),
                       temperature: float = 0.0) -> Generation:
        if self.how == "fails":
            raise BackendError("judge: connection refused")
        if self.how == "hangs":
            await asyncio.sleep(60)
        return Generation("perhaps, it depends" if self.how == "garbage" else "yes", None,
                          Usage(10, 2, 0.0))

    async def score_options(self, prompt: str, options) -> OptionScores:
        raise NotImplementedError


def judged_by(config: Config, how: str) -> dict[str, Rung]:
    judge = Rung("judge", Judging(how), Price(input_per_mtok=1.0))
    return {**rungs_from_config(config), "judge": judge}


@contextlib.asynccontextmanager
async def running(config: Config, rungs: dict[str, Rung] | None = None
                  ) -> AsyncIterator[Gateway]:
    gateway = Gateway(config, Store(config.server.database, config.base_dir), rungs=rungs)
    await gateway.start()
    await gateway.wait_ready()
    try:
        yield gateway
    finally:
        await gateway.close()


async def settled(gateway: Gateway, timeout_s: float = 20.0) -> None:
    """Wait until no shadow run is queued or running, then until the store has it all."""
    shadow = gateway.shadow
    deadline = time.monotonic() + timeout_s
    while shadow.queue.qsize() or shadow.running:
        assert time.monotonic() < deadline, "shadow runs never finished"
        await asyncio.sleep(0.01)
    await asyncio.to_thread(gateway.store.flush)


def rows(folder: Path, query: str) -> list[tuple]:
    return sqlite3.connect(folder / "gw.db").execute(query).fetchall()


def test_every_rung_is_labelled_with_its_source_and_judge(base, tmp_path):
    config = configure(base, tmp_path, shadow=REFERENCE)

    async def main() -> list:
        async with running(config) as gateway:
            served = [await gateway.respond("chat", ask(k), "key1") for k in range(20)]
            await settled(gateway)
            return [s.body for s in served], gateway.shadow.judge.provenance

    bodies, provenance = asyncio.run(main())
    stopped = [b for b in bodies if len(b["ladder"]["stages"]) == 1]
    assert stopped and len(stopped) < len(bodies)  # some stopped at small, some climbed
    shadow = rows(tmp_path, "select request_id, stage, model, decision, cost from stages "
                            f"where decision = '{SHADOW}'")
    assert sorted(r[0] for r in shadow) == sorted(b["id"] for b in stopped)
    assert {(r[1], r[2]) for r in shadow} == {(1, "big")} and all(r[4] > 0 for r in shadow)
    labels = rows(tmp_path, "select request_id, model, quality, source, judge from feedback")
    assert len(labels) == 2 * len(bodies)  # both rungs of every request
    assert {(s, j) for _, _, _, s, j in labels} == {("reference", provenance)}
    assert provenance.startswith("judge=none;reference=big;rubric=")
    answers = {b["id"]: {s["model"]: s["answer"] for s in b["ladder"]["stages"]}
               for b in bodies}
    shadowed = dict(rows(tmp_path, f"select request_id, answer from stages "
                                   f"where decision = '{SHADOW}'"))
    for rid, model, quality, _, _ in labels:
        big = answers[rid].get("big", shadowed.get(rid))
        expected = 1.0 if model == "big" else float(answers[rid]["small"] == big)
        assert quality == expected
    # the served cost and saving are the cascade's own: shadow runs are not billed to them
    for rid, cost, saved in rows(tmp_path, "select id, cost, saved from requests"):
        body = next(b for b in bodies if b["id"] == rid)
        assert cost == pytest.approx(body["ladder"]["cost"])
        assert saved == pytest.approx(body["ladder"]["saved"])


def test_responses_are_the_same_with_and_without_shadow(base, tmp_path):
    def answers(config: Config) -> list:
        async def main() -> list:
            async with running(config) as gateway:
                bodies = [(await gateway.respond("chat", ask(k), None)).body for k in range(12)]
                if gateway.shadow is not None:
                    await settled(gateway)
                    assert gateway.shadow.finished == 12
            return [(b["model"], b["choices"], b["usage"], b["ladder"]["cost"],
                     [(s["model"], s["decision"], s["answer"]) for s in b["ladder"]["stages"]])
                    for b in bodies]
        return asyncio.run(main())

    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    assert answers(configure(base, tmp_path / "on", shadow=REFERENCE)) == answers(
        configure(base, tmp_path / "off"))


def test_a_shadow_run_that_hangs_never_delays_a_response(base, tmp_path):
    """The judge hangs for a minute: whole and streamed responses come at once, the
    stream's shadow run is offered only once the stream has been sent."""
    config = configure(base, tmp_path, shadow={**REFERENCE, "model": "judge", "mode": "model",
                                               "timeout_s": 120})

    async def main() -> None:
        async with running(config, judged_by(config, "hangs")) as gateway:
            shadow = gateway.shadow
            start = time.perf_counter()
            for k in range(3):
                served = await gateway.respond("chat", ask(k), None)
                assert served.body["choices"][0]["message"]["content"]
            assert time.perf_counter() - start < 2.0
            await asyncio.sleep(0.05)
            assert shadow.running == 1 and shadow.finished == 0  # still grading the first
            opened = await gateway.stream("chat", ask(4, stream=True), None)
            offered = shadow.served
            chunks = [chunk async for chunk in opened.chunks]
            assert chunks[-1] == b"data: [DONE]\n\n" and shadow.served == offered
            await opened.aclose()  # the stream is over: now it is offered
            assert shadow.served == offered + 1 and shadow.queue.qsize() == 3

    asyncio.run(main())


@pytest.mark.parametrize("how, kind", [("fails", "backend"), ("hangs", "timeout"),
                                       ("garbage", "garbage")])
def test_a_judge_that_fails_leaves_the_cells_unlabelled(base, tmp_path, how, kind):
    config = configure(base, tmp_path, shadow={**REFERENCE, "model": "judge", "mode": "model",
                                               "timeout_s": 0.2})
    before = metric("ladder_judge_failures_total", kind=kind)
    with TestClient(create_app(config, gateway=Gateway(
            config, Store(config.server.database, config.base_dir),
            rungs=judged_by(config, how)))) as client:
        gateway = client.app.state.gateway
        client.portal.call(gateway.wait_ready)
        for k in range(4):
            response = client.post("/v1/chat/completions", json=ask(k).model_dump())
            assert response.status_code == 200, response.text
        client.portal.call(settled, gateway)
        text = client.get("/metrics").text
    assert rows(tmp_path, "select count(*) from feedback") == [(0,)]  # no made-up label
    assert rows(tmp_path, f"select count(*) from stages where decision = '{SHADOW}'")[0][0] > 0
    assert metric("ladder_judge_failures_total", kind=kind) - before == 8  # 2 rungs × 4
    assert f'ladder_judge_failures_total{{kind="{kind}"}}' in text


def test_a_rung_that_fails_in_shadow_is_counted_and_unlabelled(base, tmp_path):
    config = configure(base, tmp_path, shadow=REFERENCE)
    rungs = {**rungs_from_config(config), "big": Rung("big", Judging("fails"), Price())}

    async def main() -> None:
        async with running(config, rungs) as gateway:  # the dear rung is down
            for k in range(6):
                served = await gateway.respond("chat", ask(k), None)
                assert served.body["model"] == "small"
            await settled(gateway)

    before = metric("ladder_shadow_rung_failures_total", model="big")
    asyncio.run(main())
    assert metric("ladder_shadow_rung_failures_total", model="big") > before
    assert rows(tmp_path, "select count(*) from stages where decision = 'shadow'") == [(0,)]
    # the reference gave no answer: small's answer cannot be graded by agreement, and
    # without a judge model nothing else can
    assert rows(tmp_path, "select count(*) from feedback") == [(0,)]


def fake_result(models: tuple[str, ...] = ("small",)) -> Result:
    from ladder.runtime import RungTrace

    trace = tuple(RungTrace(m, "n2", {}, 0.5, None, "stop", 0.01, 0.001) for m in models)
    return Result("n2", "n2", models[-1], len(models) - 1, 0.001, trace, None, 0.01, 0.0)


def test_drops_under_load_when_the_queue_is_full_and_over_budget(base, tmp_path):
    config = configure(base, tmp_path, shadow={**REFERENCE, "max_pending": 1,
                                               "budget": 1e-5})
    load = [0]

    async def main() -> dict:
        store = Store(config.server.database, config.base_dir)
        shadow = Shadow.from_config(config, rungs_from_config(config), store,
                                    lambda: load[0], "replica-a")
        def offer() -> bool:
            return shadow.offer("r", "What is 1 + 1?", ("small", "big"), fake_result(),
                                GenerationParams())

        before = {r: metric("ladder_shadow_dropped_total", reason=r)
                  for r in ("busy", "queue_full", "budget")}
        load[0] = 33  # above busy_share × max_concurrency = 32
        assert not offer()
        load[0] = 1
        assert offer() and offer()  # one for the idle worker, one waiting
        assert not offer()  # the queue is full (no worker is running here)
        while shadow.queue.qsize():
            shadow.queue.get_nowait()
        shadow.spent, shadow.finished = 1e-3, 1  # one run cost 100× the budget
        assert not offer()
        store.close()
        return {r: metric("ladder_shadow_dropped_total", reason=r) - before[r] for r in before}

    assert asyncio.run(main()) == {"busy": 1, "queue_full": 1, "budget": 1}


def test_with_models_in_process_shadow_calls_wait_for_a_pause(base, tmp_path):
    """In-process models serve one call at a time: a shadow call starts only after nothing
    has been in flight for IDLE_S, however long the traffic lasts."""
    from ladder.server import shadow as module

    config = configure(base, tmp_path, shadow=REFERENCE)
    rungs = rungs_from_config(config)
    load = [1]

    async def main() -> None:
        store = Store(config.server.database, config.base_dir)
        shadow = Shadow(config.server.shadow, rungs, store, task_type="short",
                        load=lambda: load[0], busy_limit=32, wait_idle=True)
        workers = shadow.start()
        assert shadow.offer("r", "What is 1 + 1?", ("small", "big"), fake_result(),
                            GenerationParams())
        for k in range(30):  # requests in flight, with gaps shorter than the pause
            load[0] = 0 if k % 5 == 0 else 1
            await asyncio.sleep(module.IDLE_POLL_S)
        assert rungs["big"].backend.calls == 0 and shadow.finished == 0
        load[0] = 0
        start = time.perf_counter()
        while not shadow.finished:
            await asyncio.sleep(0.01)
        assert time.perf_counter() - start >= module.IDLE_S
        assert rungs["big"].backend.calls == 1
        for worker in workers:
            worker.cancel()
        store.close()

    asyncio.run(main())


def test_a_gateway_keeps_its_mean_shadow_cost_within_budget(base, tmp_path):
    budget = 2e-5  # about one shadow run in six requests on these prices
    config = configure(base, tmp_path, shadow={**REFERENCE, "budget": budget})
    before = metric("ladder_shadow_dropped_total", reason="budget")

    async def main() -> Shadow:
        async with running(config) as gateway:
            for k in range(40):
                await gateway.respond("chat", ask(k), None)
                await settled(gateway)
            return gateway.shadow

    shadow = asyncio.run(main())
    assert 1 < shadow.finished < shadow.served / 2
    per_run = shadow.spent / shadow.finished
    assert shadow.spent <= budget * shadow.served + per_run  # over by one run at most
    assert metric("ladder_shadow_dropped_total", reason="budget") - before == (
        shadow.served - shadow.finished)


def test_a_person_s_label_wins_over_the_judge_s_whatever_the_order(database_url,
                                                                   make_request):
    with Store(database_url) as store:
        store.submit(make_request("q1"))
        store.submit(make_request("q2"))
        judged = [FeedbackRecord(q, 0.0, 1.0, None, "large", "judge", "judge=x", 0.01)
                  for q in ("q1", "q2")]
        assert store.offer_shadow(ShadowRecord("q1", (), (judged[0],)))
        store.flush()

        async def person(rid: str) -> None:
            assert await store.add_feedback(FeedbackRecord(rid, 1.0, 2.0, "k", "large"))

        asyncio.run(person("q1"))  # after the judge's label
        asyncio.run(person("q2"))
        assert store.offer_shadow(ShadowRecord("q2", (), (judged[1],)))  # before it
        store.flush()
        served = {s.id: s for s in store.served()}
    for rid in ("q1", "q2"):
        assert served[rid].labels == {"large": 1.0}
        assert served[rid].sources == {"large": ("human", None)}


def test_export_keeps_label_sources_and_fits(base, tmp_path):
    config = configure(base, tmp_path, shadow={**REFERENCE, "rate": 0.5})

    async def main() -> None:
        async with running(config) as gateway:
            for k in range(40):
                served = await gateway.respond("chat", ask(k), "key1")
                if k % 4 == 0:
                    assert await gateway.store.add_feedback(
                        FeedbackRecord(served.record.id, 1.0, time.time(), "key1"))
            await settled(gateway)

    asyncio.run(main())
    out = tmp_path / "traffic.jsonl"
    runner = CliRunner()
    done = runner.invoke(cli, ["logs", "export", "-o", str(out), "--database",
                               config.server.database])
    assert done.exit_code == 0, done.output
    df = load_runlog(out)
    labelled = df[df["quality"].notna()]
    assert set(labelled["label_source"]) == {"human", "reference"}
    assert df[df["quality"].isna()]["label_source"].isna().all()
    judged = labelled[labelled["label_source"] == "reference"]
    assert judged["label_judge"].str.startswith("judge=none;reference=big;").all()
    assert labelled[labelled["label_source"] == "human"]["label_judge"].isna().all()
    policy = tmp_path / "policy.json"
    done = runner.invoke(cli, ["fit", str(out), "-o", str(policy), "--policy", "threshold",
                               "--lambda", "2000"])
    assert done.exit_code == 0, done.output
    spend = runner.invoke(cli, ["logs", "spend", "--database", config.server.database])
    assert spend.exit_code == 0 and "shadow" in spend.output
    with Store(config.server.database, create=False) as store:
        row = store.spend_by_key()["key1"]
    stage_cost = rows(tmp_path, "select sum(cost) from stages where decision = 'shadow'")[0][0]
    assert row["shadow"] == pytest.approx(stage_cost)  # agreement's labels cost nothing
    assert row["cost"] == pytest.approx(
        rows(tmp_path, "select sum(cost) from requests")[0][0])


def test_the_online_learner_refits_on_shadow_labels(base, tmp_path):
    config = configure(base, tmp_path, shadow=REFERENCE)

    async def main() -> tuple:
        async with running(config) as gateway:
            learner = gateway.catalog.targets["learner"].learner
            warm = learner.policy.thresholds_.copy()
            for k in range(60):
                await gateway.respond("chat", ask(k, model="learner"), None)
            await settled(gateway)
            deadline = time.monotonic() + 20
            while learner.n_refits_ == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return warm, learner.policy.thresholds_, learner.n_refits_

    refits = metric("ladder_learner_refits_total", policy="learner")
    warm, now, n = asyncio.run(main())
    assert n > 0 and metric("ladder_learner_refits_total", policy="learner") == refits + n
    assert not all(math.isclose(a, b) for a, b in zip(warm, now, strict=True))
    assert metric("ladder_learner_threshold", policy="learner", stage="0") == now[0]


def test_a_fit_policy_refits_on_the_labelled_traffic(base, tmp_path, monkeypatch):
    from ladder.server import export

    data = yaml.safe_load((base / "ladder.yaml").read_text())
    policies = data["server"]["policies"]
    policies[0]["fit"]["refit_every_s"] = 0.2
    config = configure(base, tmp_path, shadow=REFERENCE, policies=policies)
    calls: list[int] = []  # the traffic rows of each refit (-1: it failed)

    def spy(fails: bool) -> None:
        real = export.with_traffic

        def with_traffic(*args: object) -> int:
            if fails:
                calls.append(-1)
                raise OSError("disk full")
            calls.append(real(*args))
            return calls[-1]

        monkeypatch.setattr(export, "with_traffic", with_traffic)

    async def main(done: Callable[[object, object], bool]) -> tuple[object, object]:
        async with running(config) as gateway:
            first = gateway.catalog.targets["balanced"]
            for k in range(30):
                await gateway.respond("chat", ask(k), None)
            await settled(gateway)
            calls.clear()
            deadline = time.monotonic() + 60
            while not done(first, gateway.catalog.targets["balanced"]):
                assert time.monotonic() < deadline, "no refit"
                await asyncio.sleep(0.05)
            served = await gateway.respond("chat", ask(1), None)
            assert served.body["choices"]
            return first, gateway.catalog.targets["balanced"]

    spy(fails=False)
    # a refit already running when the traffic settled may have read no labelled rows yet:
    # wait for one that did (the deadline fails the test when none does)
    first, after = asyncio.run(main(lambda first, now: now is not first
                                    and any(n > 0 for n in calls)))
    assert after.cascade.chain == first.cascade.chain
    assert max(calls) > 0  # refitted with the shadowed requests' rows
    spy(fails=True)
    first, after = asyncio.run(main(lambda first, now: len(calls) >= 2))
    assert after is first  # a failed refit keeps the policy it had


def test_shadow_rate_flag_and_config_errors(base, tmp_path):
    config = configure(base, tmp_path, shadow=REFERENCE)
    assert with_shadow_rate(config, 0.25).server.shadow.rate == 0.25
    assert with_shadow_rate(config, None) is config
    off = with_shadow_rate(config, 0)
    assert Shadow.from_config(off, {}, None, lambda: 0, "r") is None  # rate 0: no shadow
    plain = configure(base, tmp_path)
    assert with_shadow_rate(plain, 0) is plain
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(
        {k: v for k, v in plain.model_dump(mode="json", by_alias=True).items()
         if k not in ("base_dir", "judge")}))
    done = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "plain.yaml"),
                                    "--shadow-rate", "0.5"])
    assert done.exit_code == 2 and "server.shadow" in done.output
    assert "Traceback" not in done.output
    with pytest.raises(ValueError, match=r"server\.shadow\.reference: no model named 'nope'"):
        configure(base, tmp_path, shadow={"reference": "nope"})


def test_metrics_report_shadow_work(base, tmp_path):
    config = configure(base, tmp_path, shadow=REFERENCE)
    with TestClient(create_app(config)) as client:
        client.portal.call(client.app.state.gateway.wait_ready)
        for k in range(5):
            assert client.post("/v1/chat/completions",
                               json=ask(k).model_dump()).status_code == 200
        client.portal.call(settled, client.app.state.gateway)
        text = client.get("/metrics").text
    for line in ('ladder_shadow_runs_total{outcome="started"}',
                 'ladder_shadow_runs_total{outcome="finished"}',
                 'ladder_shadow_labels_total{source="reference"}', "ladder_shadow_cost_total",
                 "ladder_shadow_cost_per_request", 'ladder_learner_threshold{policy="learner"'):
        assert line in text
