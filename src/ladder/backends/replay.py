"""Answers from a run log: the whole runtime driven by real logged outputs.

A query is looked up by its id; the answer, signals, cost and quality are the
logged ones, so a replayed cascade can be compared decision for decision with the
engine's offline evaluation of the same log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pandas as pd

from ladder.backends.base import (
    DEFAULT_TEMPLATE,
    Backend,
    BackendError,
    Generation,
    ModelOutput,
    OptionScores,
)
from ladder.runlog import RunLogError, load_runlog
from ladder.runlog.table import top_answer_share
from ladder.tasks import Item


@cache
def _rows_by_model(path: Path, mtime: float, format: str) -> dict[str, pd.DataFrame]:
    """The log split by model and indexed by query id; read once per file version."""
    df = load_runlog(path, format)
    return {str(m): part.set_index("query_id") for m, part in df.groupby("model", sort=False)}


def _number(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


class ReplayBackend(Backend):
    """The logged outputs of one model of a run log."""

    def __init__(self, log: str | Path, model: str, format: str = "auto"):
        self.log = Path(log)
        self.model = model
        try:
            by_model = _rows_by_model(self.log.resolve(), self.log.stat().st_mtime, format)
        except (OSError, RunLogError) as error:
            raise BackendError(f"replay log {self.log}: {error}") from None
        if model not in by_model:
            raise BackendError(f"model '{model}' is not in {self.log}; it has "
                               f"{', '.join(by_model)}")
        self._rows = by_model[model]

    def _row(self, query_id: str) -> pd.Series:
        try:
            return self._rows.loc[query_id]
        except KeyError:
            raise BackendError(f"query '{query_id}' has no row for '{self.model}' in "
                               f"{self.log}") from None

    async def answer(self, item: Item, template: str = DEFAULT_TEMPLATE,
                     max_tokens: int = 32) -> ModelOutput:
        start = time.perf_counter()
        row = self._row(item.id)
        get = row.get
        answer = get("answer")
        answer = None if answer is None or (isinstance(answer, float) and math.isnan(answer)) \
            else str(answer)
        samples = get("samples")
        latency_ms = _number(get("latency_ms"))
        return ModelOutput(
            answer=answer,
            text=answer or "",
            confidence=_number(get("confidence")),
            logprob_mean=_number(get("logprob_mean")),
            logprob_min=_number(get("logprob_min")),
            tokens_in=_number(get("tokens_in")),
            tokens_out=_number(get("tokens_out")),
            latency_s=(latency_ms / 1000 if not math.isnan(latency_ms)
                       else time.perf_counter() - start),
            sample_share=top_answer_share(samples) if samples is not None else math.nan,
            cost=float(row["cost"]),
            quality=float(row["quality"]),
        )

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",)) -> Generation:
        raise BackendError("the replay backend answers logged queries only (decode an item "
                           "with the log's query id); it cannot generate new text")

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        raise BackendError("the replay backend answers logged queries only; it cannot score "
                           "new options")
