"""Run every configured model on a task set and append the outputs to a run log.

The log is JSON Lines, append-only and flushed row by row: an interrupted run
(Ctrl-C, a crash, a dead server) keeps every finished row, and rerunning skips
the (query, model) pairs already logged. A line cut short by a kill is dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.backends.base import ModelOutput
from ladder.rung import Rung
from ladder.tasks import Item, TaskError, grade


class CollectError(ValueError):
    """A log that cannot be appended to, or items that cannot be graded."""


@dataclass(frozen=True)
class CollectSummary:
    written: int
    skipped: int
    repaired_line: bool  # a half-written last line from an interrupted run was dropped


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def log_row(item: Item, model: str, output: ModelOutput) -> dict[str, Any]:
    """One run-log row (docs/runlog.md); `text` is an extra column kept for inspection."""
    row = {
        "query_id": item.id,
        "model": model,
        "quality": grade(item, output.answer),
        "cost": output.cost,
        "benchmark": item.domain,
        "split": item.meta.get("split"),
        "prompt": item.prompt,
        "answer": output.answer,
        "confidence": output.confidence,
        "logprob_mean": output.logprob_mean,
        "logprob_min": output.logprob_min,
        "margin": output.margin,
        "entropy": output.entropy,
        "tokens_in": output.tokens_in,
        "tokens_out": output.tokens_out,
        "latency_ms": output.latency_s * 1000,
        "text": output.text,
    }
    return {k: _json_value(v) for k, v in row.items() if v is not None}


def finished_pairs(path: Path) -> tuple[set[tuple[str, str]], bool]:
    """(query_id, model) pairs already in the log; drops a cut-off last line in place."""
    if not path.exists():
        return set(), False
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    repaired = end < len(raw)
    if repaired:
        with path.open("r+b") as f:
            f.truncate(end)
    done = set()
    for number, line in enumerate(raw[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            done.add((str(row["query_id"]), str(row["model"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CollectError(f"{path} line {number} is not a run-log row; refusing to "
                               "append to it") from None
    return done, repaired


def collect(items: Sequence[Item], rungs: dict[str, Rung], out: str | Path,
            concurrency: int = 1,
            on_row: Callable[[str, int, int], None] | None = None) -> CollectSummary:
    """Run each model on each item not yet logged, appending one row per call.

    on_row(model, done, total) is called after each row (a progress bar)."""
    out = Path(out)
    if out.suffix != ".jsonl":
        raise CollectError(f"{out}: collect appends JSON Lines; use a .jsonl output path")
    ungraded = [i.id for i in items if i.reference is None]
    if ungraded:
        raise TaskError(f"items without a 'reference' cannot be graded: {', '.join(ungraded[:5])}")
    done, repaired = finished_pairs(out)
    todo = [(item, name) for name in rungs for item in items if (item.id, name) not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("a", encoding="utf-8") as log:

        async def run_all() -> None:
            nonlocal written
            gate = asyncio.Semaphore(concurrency)

            async def one(item: Item, name: str) -> None:
                nonlocal written
                async with gate:
                    output, _ = await rungs[name].run(item)
                log.write(json.dumps(log_row(item, name, output)) + "\n")
                log.flush()
                written += 1
                if on_row is not None:
                    on_row(name, written, len(todo))

            try:
                for name in rungs:  # one model at a time: a local model stays loaded once
                    await asyncio.gather(*(one(i, n) for i, n in todo if n == name))
            finally:
                os.fsync(log.fileno())
                for rung in rungs.values():
                    await rung.backend.aclose()

        asyncio.run(run_all())
    return CollectSummary(written, len(items) * len(rungs) - len(todo), repaired)
