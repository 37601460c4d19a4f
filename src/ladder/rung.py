"""One configured model of the ladder: a backend, its price and its prompt template."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from ladder.backends.base import DEFAULT_TEMPLATE, Backend, ModelOutput
from ladder.config import Config, Price
from ladder.tasks import Item


@dataclass
class Rung:
    """Runs one model on an item and prices the call (logged cost when the backend has it)."""

    name: str
    backend: Backend
    price: Price
    template: str = DEFAULT_TEMPLATE
    max_tokens: int = 32

    async def run(self, item: Item) -> tuple[ModelOutput, float]:
        """The model's output with its cost filled in, and the call's wall time in seconds."""
        start = time.perf_counter()
        output = await self.backend.answer(item, self.template, self.max_tokens)
        wall = time.perf_counter() - start
        if output.cost is None:
            cost = self.price.cost(_count(output.tokens_in), _count(output.tokens_out),
                                   output.latency_s)
            output = replace(output, cost=cost)
        return output, wall


def _count(tokens: float) -> float:
    return 0.0 if math.isnan(tokens) else tokens


def rungs_from_config(config: Config, names: list[str] | None = None) -> dict[str, Rung]:
    """Build the configured models (all, or only `names`); backends load lazily."""
    specs = config.models if names is None else [config.spec(n) for n in names]
    return {
        spec.name: Rung(spec.name, spec.build(config.base_dir), spec.price,
                        spec.template or config.task.template, config.task.max_tokens)
        for spec in specs
    }
