"""A deterministic stand-in model for tests: no weights, no network, known skill."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import numpy as np

from ladder.backends.base import (
    DEFAULT_PARAMS,
    Backend,
    Generation,
    GenerationParams,
    OptionScores,
    TextStream,
    Usage,
)


def _unit(*parts: object) -> float:
    """A reproducible number in [0, 1) from its inputs (stable across processes)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


class FakeBackend(Backend):
    """Knows the right answer of the prompts in `truths` with probability `skill`.

    Output is a pure function of (seed, prompt): the same prompt always gets the same
    answer and log-probabilities, so tests can assert exact values. `latency_s` sleeps
    (without blocking the event loop) to imitate a model's own time. Temperature is
    accepted and ignored (the output stays a pure function); streams yield one word a
    delta."""

    def __init__(self, truths: Mapping[str, str] | None = None, skill: float = 0.7,
                 seed: int = 0, latency_s: float = 0.0):
        self.truths = dict(truths or {})
        self.skill = skill
        self.seed = seed
        self.latency_s = latency_s
        self.calls = 0
        self.in_flight = self.max_in_flight = 0  # concurrent calls, for tests

    def knows(self, prompt: str) -> bool:
        return _unit(self.seed, "knows", prompt) < self.skill

    def truth(self, prompt: str) -> str | None:
        """The right answer of a rendered prompt: its entry whose question it contains."""
        for question, answer in self.truths.items():
            if question in prompt:
                return answer
        return None

    async def _wait(self) -> float:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.perf_counter()
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        return time.perf_counter() - start

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        return self.reply(prompt, max_tokens, stop, await self._wait())

    def reply(self, prompt: str, max_tokens: int = 32, stop: Sequence[str] = ("\n",),
              latency: float = 0.0) -> Generation:
        """The generation for `prompt`, at once (the fake upstream server answers with it)."""
        truth = self.truth(prompt)
        knows = truth is not None and self.knows(prompt)
        text = truth if knows else f"guess{int(_unit(self.seed, 'guess', prompt) * 5)}"
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)
        text = text if cut < 0 else text[:cut]
        words = text.split()[:max_tokens] or [text]
        sure = 0.9 if knows else 0.4
        logprobs = tuple(
            float(np.log(sure * (0.8 + 0.2 * _unit(self.seed, prompt, i))))
            for i in range(len(words))
        )
        return Generation(" ".join(words), logprobs,
                          Usage(len(prompt.split()), len(words), latency))

    def stream_complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                        ) -> TextStream:
        return TextStream(self._words(prompt, params))

    async def _words(self, prompt: str, params: GenerationParams) -> AsyncIterator[str | Usage]:
        generation = await self.complete(prompt, params)
        for k, word in enumerate(generation.text.split(" ")):
            yield word if k == 0 else " " + word
        yield generation.usage

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        latency = await self._wait()
        truth = self.truth(prompt)
        knows = truth is not None and self.knows(prompt)
        per_option = []
        for option in options:
            value = -0.05 if knows and option == truth else -0.5 - 4.0 * _unit(
                self.seed, prompt, option)
            per_option.append(tuple(value for _ in option.split()))
        tokens = len(prompt.split()) + sum(len(o.split()) for o in options)
        return OptionScores(tuple(per_option), Usage(tokens, 0, latency))
