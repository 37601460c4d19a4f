"""Served traffic as a run log (docs/runlog.md): one row per stage that ran.

`query_id` is the request id and `benchmark` the policy's name. A feedback's quality goes
on the row of the stage it labels (the answer returned, unless it named another model that
ran), with where it came from (`label_source`: human, or a shadow run's judge: reference or
judge) and the judge's provenance (`label_judge`); every other row has a null quality: the
run-log format's "not labelled", whose signals tuning may use but no metric scores. The
rungs a shadow run ran are rows like the served ones (the cost of running that model on
the query), so the log holds every rung of a shadowed query.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ladder.runlog import load_runlog, validate_runlog, write_runlog
from ladder.runlog.table import SIGNAL_COLUMNS
from ladder.server.writer import StoreError

SIGNALS = tuple(name for name in SIGNAL_COLUMNS if name != "tokens_out")  # tokens: own column


def served_frame(served: Iterable) -> pd.DataFrame:
    """The run-log rows of `Store.served()`'s requests."""
    rows = []
    for request in served:
        for stage in request.stages:
            source, judge = request.sources.get(stage.model, (None, None))
            rows.append({
                "query_id": request.id, "model": stage.model,
                "quality": request.labels.get(stage.model), "cost": stage.cost,
                "label_source": source, "label_judge": judge,
                "benchmark": request.policy, "prompt": request.prompt, "answer": stage.answer,
                **{name: stage.signals.get(name) for name in SIGNALS},
                "tokens_in": stage.tokens_in, "tokens_out": stage.tokens_out,
                "latency_ms": 1000 * stage.latency_s,
            })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["quality"] = frame["quality"].astype(float)  # None → NaN → JSON null
    return frame


def write_served(served: Iterable, path: str | Path) -> int:
    """Write the run log; the number of rows. Nothing served is an error, not an empty file
    (an empty log would not load)."""
    frame = served_frame(served)
    if frame.empty:
        raise StoreError("nothing to export: the database holds no served stages"
                         " for that selection")
    write_runlog(frame, path)
    return len(frame)


def with_traffic(log: str | Path, served: Iterable, path: str | Path) -> int:
    """Write `log` plus the labelled requests of `served` (every stage of each, shadow runs
    included) to `path`: what a `fit` policy refits on. The traffic rows are training rows
    (split 'train' where the log has splits) and name no task where the log names none.
    Returns the traffic rows written."""
    base = load_runlog(log)
    traffic = served_frame(r for r in served if r.labels)
    if not traffic.empty:
        if "benchmark" not in base.columns:
            traffic = traffic.drop(columns="benchmark")
        if "split" in base.columns:
            traffic["split"] = "train"
    write_runlog(validate_runlog(pd.concat([base, traffic], ignore_index=True)), path)
    return len(traffic)
