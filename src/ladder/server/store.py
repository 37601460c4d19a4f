"""The gateway's database: every served request, its stages and its feedback.

SQLAlchemy Core, one code path for SQLite and PostgreSQL. Writes go through one background
writer per process (`ladder.server.writer`: batched, group-committed); reads are short
queries on pooled connections. Opening a store migrates its database to the newest schema
(Alembic; on PostgreSQL under an advisory lock, so replicas starting at once do not race).

SQLite runs in WAL mode with foreign keys on and `synchronous=FULL`: WAL with NORMAL already
keeps a committed transaction through a crash of the process (SIGKILL), since the WAL is in
the OS's page cache; FULL also fsyncs the WAL at each commit, so an acknowledged feedback
survives a power loss or kernel crash too. Group commit pays that fsync once per batch, not
per row, which is why durability is cheap here. Writers take SQLite's write lock when their
transaction begins (BEGIN IMMEDIATE), so two processes on one file wait for each other
(busy timeout) instead of failing on a lock upgrade.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, distinct, event, func, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ladder.judge.grader import HUMAN  # a label stored without a source: a person's
from ladder.server.records import SHADOW, FeedbackRecord, RequestRecord, ShadowRecord
from ladder.server.schema import feedback, requests, stages
from ladder.server.writer import BatchWriter, StoreError

__all__ = ["FeedbackStats", "Served", "ServedStage", "Store", "StoreError", "resolve_url"]

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6C6164646572  # pg_advisory_xact_lock key ("ladder")
ANONYMOUS = "anonymous"  # spend_by_key's entry for requests made without a key


def resolve_url(url: str, base_dir: Path | None = None) -> URL:
    """A SQLAlchemy URL, with a relative SQLite path taken relative to `base_dir` (the
    config's folder) and `postgresql://` meaning psycopg 3 (the driver the extra installs)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r} (e.g. sqlite:///ladder.db or "
                         "postgresql://user@host/db)") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StoreError("an in-memory SQLite database cannot be shared with the writer "
                             "thread; give a file, e.g. sqlite:///ladder.db")
        path = Path(parsed.database)
        if base_dir is not None and not path.is_absolute():
            parsed = parsed.set(database=str(base_dir / path))
    return parsed


def _engine(url: URL) -> Engine:
    """An engine; for SQLite with the pragmas and BEGIN modes of the module docstring."""
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        engine = create_engine(url, connect_args={"timeout": 30})
    except NoSuchModuleError:
        raise StoreError(f"unknown database kind {url.drivername!r}; ladder speaks sqlite "
                         "and postgresql") from None
    except ModuleNotFoundError as error:
        raise StoreError(f"the database driver {error.name!r} is not installed (pip install "
                         "'ladder[server]')") from None

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below, not the driver's
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("ladder_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _one_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


@dataclass(frozen=True)
class ServedStage:
    """What export and the learner read of a stage that ran (not its text)."""

    stage: int
    model: str
    answer: str | None
    signals: dict[str, float]
    cost: float
    latency_s: float
    tokens_in: float
    tokens_out: float


@dataclass(frozen=True)
class Served:
    """A served request's stages that ran (a shadow run's after the served ones) and their
    labels: model → the latest feedback's quality (a feedback naming no model labels
    `model`, the one that answered), a person's over a judge's whatever their order;
    `sources`: model → (that label's source, its judge's provenance)."""

    id: str
    policy: str
    prompt: str | None
    prompt_len: int | None
    model: str | None
    stages: tuple[ServedStage, ...]
    labels: dict[str, float]
    sources: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def quality(self) -> float | None:
        """The label of the answer returned (None: none yet)."""
        return None if self.model is None else self.labels.get(self.model)


@dataclass(frozen=True)
class FeedbackStats:
    """What a learner asks at every sync: queries served, requests labelled, last label."""

    served: int
    labelled: int
    last_feedback: int  # the newest feedback id of the policy (0: none)


class Store:
    """The gateway's database (see the module docstring). `create=False` refuses to make a
    new SQLite file (for readers such as `ladder logs export`)."""

    def __init__(self, url: str, base_dir: Path | None = None, *, create: bool = True,
                 max_pending: int = 10_000, batch_rows: int = 500, linger_s: float = 0.01):
        self.url = resolve_url(url, base_dir)
        self.name = self.url.render_as_string(hide_password=True)
        if (not create and self.url.get_backend_name() == "sqlite"
                and not Path(self.url.database).exists()):
            raise StoreError(f"no database at {self.url.database}")
        self.engine = _engine(self.url)
        try:
            self._migrate()
        except SQLAlchemyError as error:
            self.engine.dispose()
            raise StoreError(f"cannot open database {self.name}: {_one_line(error)}") from None
        self._writer = BatchWriter(self.engine.execution_options(ladder_write=True),
                                   max_pending, batch_rows, linger_s)

    def _migrate(self) -> None:
        """Upgrade to head in one transaction; a no-op when already there."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.execution_options(ladder_write=True).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    # -- writes --------------------------------------------------------------------------

    def submit(self, record: RequestRecord) -> None:
        """Queue a served request for the writer; returns at once unless the queue is full."""
        self._writer.put(record)

    def offer_shadow(self, record: ShadowRecord) -> bool:
        """Queue a shadow run's stages and labels, never waiting: False (dropped) when the
        writer's queue is full."""
        return self._writer.offer(record)

    async def add_feedback(self, record: FeedbackRecord) -> bool:
        """Store a label once its batch has committed; False when no request has that id
        (checked after every request queued before it is written). Never blocks the loop."""
        return await self._writer.put_feedback(record)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until everything queued so far is committed."""
        self._writer.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is queued, stop the writer, release the connections."""
        try:
            self._writer.stop(timeout)
        finally:
            self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health and counters -------------------------------------------------------------

    def healthy(self) -> bool:
        """The writer runs, its last commit succeeded and the database answers (blocking:
        from a loop, call it in a thread)."""
        if not self._writer.thread.is_alive() or self._writer.failing is not None:
            return False
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Writer counters: rows and transactions committed, stalls of a full queue, rows
        rejected, and what is pending now."""
        return {**self._writer.counts, "pending": self._writer.queue.qsize()}

    # -- reads ---------------------------------------------------------------------------

    def _scalar(self, query: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                return conn.execute(query).scalar()
        except SQLAlchemyError as error:
            raise StoreError(f"database {self.name}: {_one_line(error)}") from None

    def count_requests(self, policy: str | None = None) -> int:
        query = select(func.count()).select_from(requests)
        if policy is not None:
            query = query.where(requests.c.policy == policy)
        return int(self._scalar(query))

    def spend_by_key(self) -> dict[str, dict[str, float]]:
        """Per key id: requests served, what they cost, the estimated saving, and what
        shadow runs spent on them (the rungs run and the judge's calls), which the served
        cost leaves out."""
        r = requests.c
        query = select(r.key_id, func.count(), func.sum(r.cost),
                       func.sum(r.saved)).group_by(r.key_id)
        rungs = (select(r.key_id, func.sum(stages.c.cost))
                 .join(stages, stages.c.request_id == r.id)
                 .where(stages.c.decision == SHADOW).group_by(r.key_id))
        judged = (select(r.key_id, func.sum(feedback.c.cost))
                  .join(feedback, feedback.c.request_id == r.id)
                  .where(feedback.c.cost.is_not(None)).group_by(r.key_id))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
                shadow: dict[str | None, float] = {}
                for key, cost in [*conn.execute(rungs), *conn.execute(judged)]:
                    shadow[key] = shadow.get(key, 0.0) + float(cost or 0.0)
        except SQLAlchemyError as error:
            raise StoreError(f"database {self.name}: {_one_line(error)}") from None
        return {key or ANONYMOUS: {"requests": int(n), "cost": float(cost or 0.0),
                                   "saved": float(saved or 0.0),
                                   "shadow": shadow.get(key, 0.0)}
                for key, n, cost, saved in rows}

    def feedback_stats(self, policy: str) -> FeedbackStats:
        """Cheap enough for every sync: counts on indexed columns."""
        labelled = (select(func.count(distinct(feedback.c.request_id)), func.max(feedback.c.id))
                    .join(requests, requests.c.id == feedback.c.request_id)
                    .where(requests.c.policy == policy))
        try:
            with self.engine.connect() as conn:
                n_labelled, last = conn.execute(labelled).one()
        except SQLAlchemyError as error:
            raise StoreError(f"database {self.name}: {_one_line(error)}") from None
        return FeedbackStats(self.count_requests(policy), int(n_labelled), int(last or 0))

    def served(self, policy: str | None = None, window: int | None = None) -> Iterator[Served]:
        """Requests in the order served (of one policy; the newest `window` only), each with
        the stages that ran and its latest feedback (the highest feedback id wins)."""
        chosen = select(requests.c.id)
        if policy is not None:
            chosen = chosen.where(requests.c.policy == policy)
        if window is not None:
            chosen = chosen.order_by(requests.c.created.desc(), requests.c.id.desc()).limit(window)
        chosen = chosen.subquery()
        r, s, f = requests.c, stages.c, feedback.c
        query = (select(r.id, r.policy, r.prompt, r.prompt_len, r.model, s.stage,
                        s.model.label("stage_model"), s.answer, s.signals, s.cost, s.latency_s,
                        s.tokens_in, s.tokens_out)
                 .join(stages, s.request_id == r.id)
                 .where(r.id.in_(select(chosen.c.id)), s.decision != "failed")
                 .order_by(r.created, r.id, s.stage))
        # a judge's labels first, then a person's, each in arrival order: the last wins
        labels = (select(f.request_id, func.coalesce(f.model, r.model).label("model"),
                         f.quality, f.source, f.judge)
                  .join(requests, r.id == f.request_id)
                  .where(f.request_id.in_(select(chosen.c.id)))
                  .order_by(f.source.is_(None), f.id))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
                found: dict[str, dict[str, tuple[float, str, str | None]]] = {}
                for label in conn.execute(labels):
                    found.setdefault(label.request_id, {})[label.model] = (
                        float(label.quality), label.source or HUMAN, label.judge)
        except SQLAlchemyError as error:
            raise StoreError(f"database {self.name}: {_one_line(error)}") from None
        yield from _group(rows, found)

    def export_runlog(self, path: str | Path, policy: str | None = None) -> int:
        """Write the served stages as a run log (see `ladder.server.export`); rows written."""
        from ladder.server.export import write_served

        return write_served(self.served(policy), path)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _group(rows: list[Any], labels: dict[str, dict[str, tuple[float, str, str | None]]]
           ) -> Iterator[Served]:
    """Stage rows (ordered by request) folded into one Served per request."""
    current: list[Any] = []
    for row in [*rows, None]:
        if current and (row is None or row.id != current[0].id):
            head = current[0]
            found = labels.get(head.id, {})
            yield Served(head.id, head.policy, head.prompt, head.prompt_len, head.model,
                         tuple(ServedStage(x.stage, x.stage_model, x.answer, dict(x.signals),
                                           x.cost, x.latency_s, _nan(x.tokens_in),
                                           _nan(x.tokens_out)) for x in current),
                         {m: q for m, (q, _, _) in found.items()},
                         {m: (source, judge) for m, (_, source, judge) in found.items()})
            current = []
        if row is not None:
            current.append(row)
