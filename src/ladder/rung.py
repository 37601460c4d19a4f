"""One configured model of the ladder: a backend, its price, its prompt template and its
circuit breaker."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ladder.backends.base import (
    DEFAULT_PARAMS,
    DEFAULT_TEMPLATE,
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    ModelOutput,
    OptionScores,
    TextStream,
    Usage,
)
from ladder.backends.breaker import CircuitBreaker
from ladder.config import Config, Price
from ladder.tasks import Item

T = TypeVar("T")


@dataclass
class Rung:
    """Runs one model on an item and prices the call (logged cost when the backend has it).

    Every call goes through the breaker: while it is open the calls raise CircuitOpen at
    once, without reaching the backend."""

    name: str
    backend: Backend
    price: Price
    template: str = DEFAULT_TEMPLATE
    max_tokens: int = 32
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        self.breaker.admit(self.name)
        try:
            result = await call()
        except BackendError as error:
            self._verdict(error)
            raise
        except BaseException:  # cancelled (or a bug): no verdict on the model's health
            self.breaker.release()
            raise
        self.breaker.success()
        return result

    def _verdict(self, error: BackendError) -> None:
        if error.caller_fault:
            self.breaker.success()  # the server answered; the request was at fault
        else:
            self.breaker.failure()

    async def run(self, item: Item, params: GenerationParams | None = None
                  ) -> tuple[ModelOutput, float]:
        """The model's output with its cost filled in, and the call's wall time in seconds."""
        start = time.perf_counter()
        output = await self._guarded(
            lambda: self.backend.answer(item, self.template, self.max_tokens, params))
        wall = time.perf_counter() - start
        if output.cost is None:
            output = replace(output, cost=self.cost(output.tokens_in, output.tokens_out,
                                                    output.latency_s))
        return output, wall

    async def score(self, prompt: str, options: tuple[str, ...]) -> tuple[OptionScores, float]:
        """Each option's log-probabilities after `prompt` (a judge's yes/no), and the
        call's cost."""
        scores = await self._guarded(lambda: self.backend.score_options(prompt, options))
        usage = scores.usage
        return scores, self.cost(usage.tokens_in, usage.tokens_out, usage.latency_s)

    def cost(self, tokens_in: float, tokens_out: float, latency_s: float) -> float:
        """The price of a call's usage (unknown token counts cost nothing)."""
        return self.price.cost(_count(tokens_in), _count(tokens_out), latency_s)

    async def chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                   ) -> Generation:
        """A pass-through chat call to this model."""
        return await self._guarded(lambda: self.backend.chat(messages, params))

    async def complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                       ) -> Generation:
        return await self._guarded(lambda: self.backend.complete(prompt, params))

    def stream_chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                    ) -> TextStream:
        """A pass-through chat stream; while the breaker is open its first step raises
        CircuitOpen, before any request."""
        return TextStream(self._watched(self.backend.stream_chat(messages, params)))

    def stream_complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                        ) -> TextStream:
        return TextStream(self._watched(self.backend.stream_complete(prompt, params)))

    async def _watched(self, stream: TextStream) -> AsyncIterator[str | Usage]:
        """Relay a backend stream, telling the breaker how it ended: exhausted is a success,
        an error a failure; stopped early (closed or cancelled) counts as a success once a
        delta arrived, else as no verdict. Admitted on the first step, so a stream never
        iterated holds no half-open trial."""
        self.breaker.admit(self.name)
        delivered = False
        try:
            async for delta in stream:
                delivered = True
                yield delta
        except BackendError as error:
            self._verdict(error)
            raise
        except BaseException:  # closed early, cancelled, or a bug
            if delivered:
                self.breaker.success()
            else:
                self.breaker.release()
            raise
        finally:
            await stream.aclose()
        self.breaker.success()
        if stream.usage is not None:
            yield stream.usage


def _count(tokens: float) -> float:
    return 0.0 if math.isnan(tokens) else tokens


def rungs_from_config(config: Config, names: list[str] | None = None) -> dict[str, Rung]:
    """Build the configured models (all, or only `names`); backends load lazily."""
    specs = config.models if names is None else [config.spec(n) for n in names]
    return {
        spec.name: Rung(spec.name, spec.build(config.base_dir), spec.price,
                        spec.template or config.task.template, config.task.max_tokens,
                        CircuitBreaker(spec.breaker.failures, spec.breaker.cooldown_s))
        for spec in specs
    }
