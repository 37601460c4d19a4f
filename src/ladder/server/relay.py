"""A pass-through stream relayed to the client after its first delta (falling back is
over by then): deltas as they come, an error event if the model breaks, and one record
of the request however the stream ends."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ladder.backends.base import BackendError
from ladder.rung import Rung
from ladder.server.catalog import Target
from ladder.server.protocol import ChatCompletionRequest, CompletionRequest
from ladder.server.records import StageRecord
from ladder.server.responses import DONE, Chunks, usage_dict


class Relay:
    """A pass-through stream after its first delta: relays the deltas, ends with an error
    event if the model breaks (too late to fall back), and records the request exactly
    once however it ends: finished, broken, or abandoned by the client (499)."""

    def __init__(self, record: Callable[..., Any], rid: str, target: Target, endpoint: str,
                 request: ChatCompletionRequest | CompletionRequest, rung: Rung,
                 stream: Any, first: str,
                 stages: list[StageRecord], began: float, start: float, key_id: str | None):
        self.record, self.rid, self.target, self.endpoint = record, rid, target, endpoint
        self.request, self.rung, self.stream, self.parts = request, rung, stream, [first]
        self.stages, self.began, self.start, self.key_id = stages, began, start, key_id
        self.error: str | None = None
        self.completed = self.recorded = False

    async def chunks(self, include_usage: bool) -> AsyncIterator[bytes]:
        chunks = Chunks(self.rid, self.endpoint, self.rung.name)
        try:
            if self.endpoint == "chat":
                yield chunks.role()
            if self.parts[0]:
                yield chunks.text(self.parts[0])
            async for delta in self.stream:
                self.parts.append(delta)
                yield chunks.text(delta)
            yield chunks.finish(None)
            if include_usage:
                yield chunks.usage(usage_dict(*self._tokens()))
            self.completed = True
            yield DONE
        except BackendError as broken:  # after the first byte: too late to fall back
            self.error = str(broken)
            yield chunks.error(self.error)
        finally:
            await self.finish()

    def _tokens(self) -> tuple[float, float]:
        usage = self.stream.usage
        return (math.nan, math.nan) if usage is None else (usage.tokens_in, usage.tokens_out)

    async def finish(self) -> None:
        """Record first (no await: a cancelled client cannot skip it), then close the
        backend stream, which ends its HTTP request."""
        if not self.recorded:
            self.recorded = True
            usage = self.stream.usage
            cost = 0.0 if usage is None else self.rung.price.cost(
                usage.tokens_in, usage.tokens_out, usage.latency_s)
            gone = not self.completed and self.error is None
            error = "client disconnected" if gone else self.error
            tokens_in, tokens_out = self._tokens()
            stages = (*self.stages, StageRecord(
                len(self.stages), self.rung.name, None, "".join(self.parts), {}, None,
                "failed" if self.error else "stop", error, cost,
                time.perf_counter() - self.start, tokens_in, tokens_out))
            self.record(self.rid, self.target.name, "passthrough", self.endpoint,
                        self.request, self.rung.name, len(self.stages),
                        sum(s.cost for s in stages), 0.0, self.began, 0.0, stages,
                        self.key_id, 499 if gone else 200, error)
        with contextlib.suppress(Exception):
            await self.stream.aclose()
