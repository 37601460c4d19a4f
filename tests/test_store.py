"""The gateway's database: migrations, batched writes, group-committed feedback, durability,
export, spend; every test on SQLite and on PostgreSQL (see conftest.database_url)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select

import ladder
from ladder.runlog import load_runlog
from ladder.server.records import FeedbackRecord
from ladder.server.schema import feedback, metadata, requests, stages
from ladder.server.store import Store, StoreError, resolve_url


def fresh_engine(url: str):
    """A connection pool of its own: what another process would read."""
    return create_engine(resolve_url(url))


def label(request_id: str, quality: float = 1.0) -> FeedbackRecord:
    return FeedbackRecord(request_id, quality, time.time(), "k1")


def test_migrations_create_the_schema_and_reopen_is_a_no_op(database_url):
    Store(database_url).close()
    engine = fresh_engine(database_url)
    found = inspect(engine)
    assert {"requests", "stages", "feedback", "alembic_version"} <= set(found.get_table_names())
    assert {i["name"] for i in found.get_indexes("requests")} == {
        "ix_requests_created", "ix_requests_policy_created", "ix_requests_key_id"}
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    Store(database_url).close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == version
    assert version == [("0003",)]


def test_a_database_of_the_first_schema_upgrades_keeping_its_rows(database_url, make_request):
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from ladder.server.store import MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with fresh_engine(database_url).begin() as conn:  # what an older ladder left behind
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql(
            "INSERT INTO requests (id, created, replica, policy, kind, endpoint, stage, cost, "
            "saved, status, latency_s, overhead_s) VALUES "
            "('old', 1, 'r', 'p', 'cascade', 'chat', 0, 0, 0, 200, 0, 0)")
        conn.exec_driver_sql("INSERT INTO feedback (request_id, quality, created) "
                             "VALUES ('old', 1, 1)")
    Store(database_url).close()
    with fresh_engine(database_url).connect() as conn:
        rows = conn.execute(select(feedback.c.request_id, feedback.c.model,
                                   feedback.c.source)).all()
    assert rows == [("old", None, None)]  # an old label is a person's


def test_migrated_database_equals_the_tables_the_queries_use(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Store(database_url).close()
    with fresh_engine(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_replicas_opening_at_once_do_not_race(database_url):
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            Store(database_url).close()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_writes_land_in_fewer_transactions_than_rows(database_url, make_request):
    with Store(database_url) as store:
        for i in range(300):
            store.submit(make_request(f"r{i}", key_id=f"k{i % 3}"))
        store.flush()
        stats = store.stats()
        assert stats["requests"] == 300 and stats["pending"] == 0
        assert stats["transactions"] < 300 / 10
    with fresh_engine(database_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(requests)).scalar() == 300
        assert conn.execute(select(func.count()).select_from(stages)).scalar() == 600
        row = conn.execute(select(stages).where(stages.c.request_id == "r7",
                                                stages.c.stage == 1)).one()
    assert row.tokens_out is None and row.signals == {
        "confidence": 0.9, "logprob_mean": -0.2, "logprob_min": -1.0}  # NaN: absent


def test_feedback_ack_means_committed_and_unknown_ids_are_refused(database_url, make_request):
    async def scenario(store: Store) -> tuple[bool, bool, bool]:
        store.submit(make_request("a"))  # feedback at once: the request is still queued
        first = await store.add_feedback(label("a", 1.0))
        unknown = await store.add_feedback(label("nope"))
        again = await store.add_feedback(label("a", 0.0))
        return first, unknown, again

    with Store(database_url) as store:
        assert asyncio.run(scenario(store)) == (True, False, True)
        with fresh_engine(database_url).connect() as conn:  # before close: acked = committed
            rows = conn.execute(select(feedback.c.quality).where(
                feedback.c.request_id == "a").order_by(feedback.c.id)).scalars().all()
        assert rows == [1.0, 0.0]
        stats = store.feedback_stats("online")
        assert (stats.served, stats.labelled, stats.last_feedback > 0) == (1, 1, True)
        assert store.stats()["unknown_feedback"] == 1


def test_feedback_does_not_block_the_loop(database_url, make_request):
    async def scenario(store: Store) -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for i in range(20):
            store.submit(make_request(f"t{i}"))
        assert all(await asyncio.gather(*(store.add_feedback(label(f"t{i}"))
                                          for i in range(20))))
        task.cancel()
        return ticks

    with Store(database_url) as store:
        assert asyncio.run(scenario(store)) > 5


def test_a_full_queue_applies_backpressure_without_dropping(database_url, make_request):
    with Store(database_url, max_pending=1) as store:
        for i in range(100):
            store.submit(make_request(f"b{i}"))
        store.flush()
        assert store.stats()["stalls"] > 0
        assert store.count_requests() == 100


def test_a_duplicate_request_is_rejected_alone(database_url, make_request):
    with Store(database_url) as store:
        for request_id in ("x", "y", "x", "z"):
            store.submit(make_request(request_id))
        store.flush()
        assert store.count_requests() == 3 and store.stats()["rejected"] == 1
        assert store.healthy()


def test_spend_and_counts(database_url, make_request):
    with Store(database_url) as store:
        store.submit(make_request("1", key_id="a"))
        store.submit(make_request("2", key_id="a", models=("small",)))
        store.submit(make_request("3", key_id=None, policy="other"))
        store.flush()
        spend = store.spend_by_key()
        assert store.count_requests() == 3 and store.count_requests("other") == 1
    assert spend["a"]["requests"] == 2
    assert spend["a"]["cost"] == pytest.approx(0.11 + 0.01)
    assert spend["a"]["saved"] == pytest.approx(0.2 - 0.12)
    assert spend["anonymous"]["requests"] == 1


def test_export_round_trips_with_null_qualities(database_url, make_request, tmp_path):
    with Store(database_url) as store:
        store.submit(make_request("q1", created=1.0))
        store.submit(make_request("q2", created=2.0, models=("small",)))
        store.submit(make_request("q3", created=3.0, prompt=None))
        failed = make_request("q4", created=4.0)
        failed = failed.__class__(**{**failed.__dict__, "stages": (
            failed.stages[0], failed.stages[1].__class__(
                **{**failed.stages[1].__dict__, "decision": "failed", "error": "timeout"}))})
        store.submit(failed)
        assert asyncio.run(store.add_feedback(label("q1", 0.0)))
        assert asyncio.run(store.add_feedback(label("q1", 1.0)))  # the latest wins
        written = store.export_runlog(tmp_path / "log.jsonl")
        assert store.export_runlog(tmp_path / "other.csv", policy="online") == written
        with pytest.raises(StoreError, match="nothing to export"):
            store.export_runlog(tmp_path / "none.jsonl", policy="absent")
    df = load_runlog(tmp_path / "log.jsonl")
    assert written == len(df) == 2 + 1 + 2 + 1  # q4's failed stage is not a row
    by = df.set_index(["query_id", "model"])
    assert by.loc[("q1", "large"), "quality"] == 1.0  # the stage that answered
    assert math.isnan(by.loc[("q1", "small"), "quality"])
    assert df[df["query_id"] != "q1"]["quality"].isna().all()
    assert by.loc[("q1", "small"), "confidence"] == 0.5
    assert by.loc[("q1", "large"), "latency_ms"] == pytest.approx(50.0)
    assert (df["benchmark"] == "online").all()
    assert by.loc[("q1", "small"), "answer"] == "answer-small"
    assert load_runlog(tmp_path / "other.csv").shape[0] == written


@pytest.mark.parametrize("url, message", [
    ("not a url", "not a database URL"),
    ("mysqlx://u@h/db", "unknown database kind"),
    ("sqlite://", "in-memory SQLite"),
    ("sqlite:////nonexistent/dir/x.db", "cannot open database"),
    ("postgresql://nobody:secret@127.0.0.1:1/db", "cannot open database"),
])
def test_bad_databases_give_one_line_errors(url, message):
    with pytest.raises(StoreError, match=message) as caught:
        Store(url)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_relative_sqlite_paths_follow_the_config(tmp_path):
    assert resolve_url("sqlite:///gw.db", tmp_path).database == str(tmp_path / "gw.db")
    assert resolve_url("postgresql://h/db").drivername == "postgresql+psycopg"
    with pytest.raises(StoreError, match="no database at"):
        Store("sqlite:///missing.db", tmp_path, create=False)


ACKER = """
import asyncio, sys, time
from ladder.server.records import FeedbackRecord
from ladder.server.store import Store
sys.path.insert(0, sys.argv[2])
from conftest import served_request

async def main():
    store = Store(sys.argv[1])
    for i in range(100000):
        store.submit(served_request(f"d{i}"))
        assert await store.add_feedback(FeedbackRecord(f"d{i}", 1.0, time.time(), None))
        print(f"d{i}", flush=True)

asyncio.run(main())
"""


def test_acknowledged_feedback_survives_sigkill(database_url):
    env = {**os.environ, "PYTHONPATH": str(Path(ladder.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", ACKER, database_url,
                              str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True,
                             env=env)
    acked = []
    for line in child.stdout:
        acked.append(line.strip())
        if len(acked) == 40:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(10)
    acked += [line.strip() for line in child.stdout]  # printed before the kill landed
    assert child.returncode == -signal.SIGKILL and len(acked) >= 40
    with fresh_engine(database_url).connect() as conn:
        stored = set(conn.execute(select(feedback.c.request_id)).scalars())
    assert set(acked) <= stored
