"""The store's one background writer: group commit of requests and feedback.

Requests are fire-and-forget: `submit` puts them on a bounded queue and returns. The writer
takes what is queued, waits up to `linger_s` for more (or until `batch_rows`), and commits
it all in one transaction. An awaited item (feedback, a flush) ends the wait at once, so
its latency is one commit; whatever arrived during the previous commit rides along (group
commit). Acknowledgements are sent only after COMMIT returns, so an acknowledged row is as
durable as the database makes a committed one.

A full queue means the database is slower than the traffic: `submit` then blocks (up to
`put_timeout_s`, counted in `stalls`) rather than drop a row; past that it raises, and the
HTTP layer's own concurrency limit turns the slowdown into 429s. A shadow run's record is
the exception: it is offered (`offer`), never waited for, and dropped when the queue is
full, since shadow work is the first thing a loaded gateway gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ladder.server.records import FeedbackRecord, RequestRecord, ShadowRecord, StageRecord
from ladder.server.schema import feedback, requests, stages

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be used: the message says which one and why, in one line."""


@dataclass
class _Feedback:
    record: FeedbackRecord
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


def _finite(value: float | None) -> float | None:
    """None for NaN: SQLite stores NaN as NULL anyway, and JSON has no NaN."""
    return None if value is None or math.isnan(value) else float(value)


def request_rows(record: RequestRecord) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A request's row and its stages' rows."""
    row = {name: getattr(record, name) for name in (c.name for c in requests.columns)}
    if row["prompt_len"] is None and record.prompt is not None:
        row["prompt_len"] = len(record.prompt)
    return row, stage_rows(record.id, record.stages)


def stage_rows(request_id: str, records: Sequence[StageRecord]) -> list[dict[str, Any]]:
    return [{
        "request_id": request_id, "stage": s.stage, "model": s.model, "answer": s.answer,
        "text": s.text, "decision": s.decision, "error": s.error, "cost": s.cost,
        "latency_s": s.latency_s, "predicted_quality": _finite(s.predicted_quality),
        "tokens_in": _finite(s.tokens_in), "tokens_out": _finite(s.tokens_out),
        "signals": {k: v for k, v in s.signals.items() if _finite(v) is not None},
    } for s in records]


def feedback_row(record: FeedbackRecord) -> dict[str, Any]:
    return {"request_id": record.request_id, "quality": record.quality,
            "created": record.created, "key_id": record.key_id, "model": record.model,
            "source": record.source, "judge": record.judge, "cost": record.cost}


class BatchWriter:
    """The queue and the thread that drains it; see the module docstring."""

    def __init__(self, engine: Engine, max_pending: int = 10_000, batch_rows: int = 500,
                 linger_s: float = 0.01, put_timeout_s: float = 5.0):
        self.engine = engine
        self.batch_rows = batch_rows
        self.linger_s = linger_s
        self.put_timeout_s = put_timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.counts = {"requests": 0, "feedback": 0, "unknown_feedback": 0, "transactions": 0,
                       "stalls": 0, "rejected": 0, "shadow": 0}
        self.failing: str | None = None  # the last commit error while retrying, else None
        self.thread = threading.Thread(target=self._run, name="ladder-store-writer",
                                       daemon=True)
        self.thread.start()

    # -- the callers' side ---------------------------------------------------------------

    def put(self, item: object) -> None:
        """Enqueue, blocking at most `put_timeout_s` when the queue is full."""
        if not self.thread.is_alive():
            raise StoreError("the store is closed (its writer has stopped)")
        try:
            self.queue.put_nowait(item)
            return
        except queue.Full:
            self.counts["stalls"] += 1
        try:
            self.queue.put(item, timeout=self.put_timeout_s)
        except queue.Full:
            raise StoreError(f"the write queue stayed full for {self.put_timeout_s:g} s: the "
                             f"database is not keeping up ({self.failing or 'slow commits'})"
                             ) from None

    def offer(self, item: object) -> bool:
        """Enqueue if there is room, never waiting; False when the queue is full."""
        if not self.thread.is_alive():
            return False
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    async def put_feedback(self, record: FeedbackRecord) -> bool:
        loop = asyncio.get_running_loop()
        item = _Feedback(record, loop, loop.create_future())
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            await asyncio.to_thread(self.put, item)
        return await item.future

    def flush(self, timeout: float | None = None) -> None:
        marker = _Flush()
        self.put(marker)
        if not marker.done.wait(timeout):
            raise StoreError(f"flush: the writer did not catch up within {timeout:g} s "
                             f"({self.failing or 'slow commits'})")

    def stop(self, timeout: float | None = None) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(queue.Full):  # reported below: the writer is busy
                self.queue.put(_STOP, timeout=timeout)
            self.thread.join(timeout)
        if self.thread.is_alive():
            raise StoreError(f"close: {self.queue.qsize()} writes still pending after "
                             f"{timeout:g} s ({self.failing or 'slow commits'})")

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take()
            stop = batch and batch[-1] is _STOP
            if stop:
                batch.pop()
            if batch:
                self._commit(batch)
            if stop:
                return

    def _take(self) -> list[object]:
        """The next batch: everything queued, lingering for requests, not for awaited items."""
        batch = [self.queue.get()]
        deadline = time.monotonic() + self.linger_s
        while (len(batch) < self.batch_rows
               and isinstance(batch[-1], RequestRecord | ShadowRecord)):
            try:
                batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        while len(batch) < self.batch_rows and batch[-1] is not _STOP:
            try:  # what queued meanwhile rides along, without waiting
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[object]) -> None:
        """One transaction for the batch; retried while the database is unreachable; on a
        constraint violation, item by item, so one bad row cannot hold up the others."""
        delay = 0.05
        while True:
            try:
                known = self._write(batch)
                self.failing = None
                break
            except DATA_ERRORS:
                known = self._write_each(batch)
                break
            except SQLAlchemyError as error:
                self.failing = str(error).splitlines()[0]
                log.warning("store: commit failed, retrying in %.2f s: %s", delay, self.failing)
                time.sleep(delay)
                delay = min(2 * delay, 5.0)
        self._settle(batch, known)

    def _write(self, batch: Sequence[object]) -> set[tuple[str, str | None]]:
        """Write the batch in one transaction; the (request id, model) of the feedback it
        stored (a label's request must exist and, when it names a model, have run it)."""
        reqs = [i for i in batch if isinstance(i, RequestRecord)]
        shadows = [i for i in batch if isinstance(i, ShadowRecord)]
        fbs = [i.record for i in batch if isinstance(i, _Feedback)]
        known: set[tuple[str, str | None]] = set()
        with self.engine.begin() as conn:
            rows = [request_rows(r) for r in reqs]
            if rows:
                conn.execute(insert(requests), [row for row, _ in rows])
            # a shadow run's stages after the requests' (its request was queued before it)
            stage_list = [s for _, ss in rows for s in ss] + [
                s for r in shadows for s in stage_rows(r.request_id, r.stages)]
            if stage_list:
                conn.execute(insert(stages), stage_list)
            if fbs:
                known = _labelled(conn, fbs)
            # a shadow label names a stage it ran or one that was served: nothing to check
            labels = [feedback_row(f) for f in fbs if (f.request_id, f.model) in known] + [
                feedback_row(f) for r in shadows for f in r.labels]
            if labels:
                conn.execute(insert(feedback), labels)
        self.counts["transactions"] += 1
        self.counts["requests"] += len(reqs)
        self.counts["shadow"] += len(shadows)
        self.counts["feedback"] += sum((f.request_id, f.model) in known for f in fbs)
        self.counts["unknown_feedback"] += sum((f.request_id, f.model) not in known for f in fbs)
        return known

    def _write_each(self, batch: Sequence[object]) -> set[tuple[str, str | None]]:
        known: set[tuple[str, str | None]] = set()
        for item in batch:
            if isinstance(item, _Flush):
                continue
            try:
                known |= self._write([item])
            except DATA_ERRORS as error:
                self.counts["rejected"] += 1
                message = str(error).splitlines()[0]
                log.error("store: rejected a row: %s", message)
                if isinstance(item, _Feedback):
                    _answer(item, StoreError(f"feedback not stored: {message}"))
        return known

    @staticmethod
    def _settle(batch: Sequence[object], known: set[tuple[str, str | None]]) -> None:
        for item in batch:
            if isinstance(item, _Feedback):
                _answer(item, (item.record.request_id, item.record.model) in known)
            elif isinstance(item, _Flush):
                item.done.set()


DATA_ERRORS = (IntegrityError, TypeError, ValueError)  # a bad row, not a bad database


def _labelled(conn: Connection, fbs: Sequence[FeedbackRecord]) -> set[tuple[str, str | None]]:
    """Which labels have something to label: the request (model None), or a stage of it
    that ran that model."""
    ids = {f.request_id for f in fbs}
    found = set(conn.execute(select(requests.c.id).where(requests.c.id.in_(ids))).scalars())
    named = {f.request_id for f in fbs if f.model is not None and f.request_id in found}
    ran = set() if not named else {
        (row.request_id, row.model) for row in conn.execute(
            select(stages.c.request_id, stages.c.model).where(
                stages.c.request_id.in_(named), stages.c.decision != "failed"))}
    return ({(i, None) for i in found}
            | {(f.request_id, f.model) for f in fbs if (f.request_id, f.model) in ran})


def _answer(item: _Feedback, outcome: bool | Exception) -> None:
    """Resolve an awaited feedback on its own loop (gone if its caller's loop closed)."""
    def settle() -> None:
        if item.future.done():  # the caller gave up waiting (cancelled)
            return
        if isinstance(outcome, Exception):
            item.future.set_exception(outcome)
        else:
            item.future.set_result(outcome)

    try:
        item.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        log.warning("store: feedback for %s committed after its caller's loop closed",
                    item.record.request_id)
