"""Answers from a run log: the whole runtime driven by real logged outputs.

A query is looked up by its id; the answer, signals, cost and quality are the
logged ones, so a replayed cascade can be compared decision for decision with the
engine's offline evaluation of the same log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pandas as pd

from ladder.backends.base import (
    DEFAULT_TEMPLATE,
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    ModelOutput,
    OptionScores,
)
from ladder.runlog import RunLogError, load_runlog
from ladder.runlog.table import top_answer_share
from ladder.tasks import Item


def _number(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def _output(row: dict) -> ModelOutput:
    """A logged row as the output the model gave (answers as strings, as the engine's
    QueryTable codes them)."""
    answer = row.get("answer")
    answer = None if answer is None or pd.isna(answer) else str(answer)
    samples = row.get("samples")
    latency_ms = _number(row.get("latency_ms"))
    return ModelOutput(
        answer=answer,
        text=answer or "",
        confidence=_number(row.get("confidence")),
        logprob_mean=_number(row.get("logprob_mean")),
        logprob_min=_number(row.get("logprob_min")),
        margin=_number(row.get("margin")),
        entropy=_number(row.get("entropy")),
        tokens_in=_number(row.get("tokens_in")),
        tokens_out=_number(row.get("tokens_out")),
        latency_s=0.0 if math.isnan(latency_ms) else latency_ms / 1000,
        sample_share=top_answer_share(samples) if samples is not None else math.nan,
        cost=float(row["cost"]),
        quality=float(row["quality"]),
    )


@cache
def _outputs_by_model(path: Path, mtime: float, format: str) -> dict[str, dict[str, ModelOutput]]:
    """Every logged output, by model and query id; read once per file version."""
    df = load_runlog(path, format)
    records = df.to_dict("records")
    by_model: dict[str, dict[str, ModelOutput]] = {}
    for row in records:
        by_model.setdefault(str(row["model"]), {})[str(row["query_id"])] = _output(row)
    return by_model


class ReplayBackend(Backend):
    """The logged outputs of one model of a run log."""

    def __init__(self, log: str | Path, model: str, format: str = "auto"):
        self.log = Path(log)
        self.model = model
        try:
            by_model = _outputs_by_model(self.log.resolve(), self.log.stat().st_mtime, format)
        except (OSError, RunLogError) as error:
            raise BackendError(f"replay log {self.log}: {error}") from None
        if model not in by_model:
            raise BackendError(f"model '{model}' is not in {self.log}; it has "
                               f"{', '.join(by_model)}")
        self._outputs = by_model[model]

    async def answer(self, item: Item, template: str = DEFAULT_TEMPLATE,
                     max_tokens: int = 32, params: GenerationParams | None = None
                     ) -> ModelOutput:
        try:
            return self._outputs[item.id]
        except KeyError:
            raise BackendError(f"query '{item.id}' has no row for '{self.model}' in "
                               f"{self.log}") from None

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        raise BackendError("the replay backend answers logged queries only (decode an item "
                           "with the log's query id); it cannot generate new text")

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        raise BackendError("the replay backend answers logged queries only; it cannot score "
                           "new options")
