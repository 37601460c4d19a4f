"""The one small interface every model sits behind.

A backend does two things a cascade needs from a language model: generate text
with per-token log-probabilities, and score the options of a multiple-choice item
by their log-likelihood after the prompt. `answer` turns either into one rung's
output for an item (answer, signals, usage); the replay backend answers from a
run log instead. Cost is not a backend's business: the runtime prices usage.

For the gateway's pass-through, `chat` / `complete` (and their `stream_*` forms) call the
model with a client's own messages or prompt; the defaults here build on `generate`, and
backends with a native chat API (openai, llamacpp) override them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ladder.tasks import Item, extract_answer

DEFAULT_TEMPLATE = "Question: {prompt}\nAnswer:"
PASSTHROUGH_MAX_TOKENS = 256  # a pass-through call without max_tokens, where a limit is needed


def with_option(prompt: str, option: str) -> str:
    """The text whose tail is scored for an option: prompt, one space unless either side
    already has one, option."""
    sep = "" if prompt[-1:].isspace() or option[:1].isspace() else " "
    return prompt + sep + option


class BackendError(RuntimeError):
    """A model call failed (server unreachable, bad response, missing weights).

    `caller_fault`: the request itself was refused (HTTP 400/413/422), which says nothing
    about the model's health, so a circuit breaker does not count it."""

    caller_fault = False


class StreamBroken(BackendError):
    """A stream failed after its first delta: text already went out, so no fallback."""


@dataclass(frozen=True)
class GenerationParams:
    """A request's generation settings; None keeps the default (for a rung: the task's
    max_tokens, stop at a newline, temperature 0; for a pass-through: the server's)."""

    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    temperature: float | None = None


DEFAULT_PARAMS = GenerationParams()


@dataclass(frozen=True)
class Usage:
    tokens_in: int
    tokens_out: int
    latency_s: float


@dataclass(frozen=True)
class Generation:
    """Generated text; token_logprobs is None when the server gives none."""

    text: str
    token_logprobs: tuple[float, ...] | None
    usage: Usage


class TextStream:
    """An async iterator of text deltas; `usage` is set once it is exhausted (None before).

    Wraps a source that yields str deltas and, last, one Usage. Close it (`aclose`, or use
    it as `async with`) when stopping early, so an HTTP response behind it is released."""

    def __init__(self, source: AsyncIterator[str | Usage]):
        self._source = source
        self.usage: Usage | None = None

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        while True:
            item = await self._source.__anext__()
            if isinstance(item, Usage):
                self.usage = item
                continue
            return item

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> TextStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def render_messages(messages: Sequence[dict]) -> str:
    """Chat messages as one plain prompt ("role: content" lines, then "assistant:"), for
    models without a chat template or endpoint."""
    lines = [f"{m.get('role', 'user')}: {_content(m.get('content'))}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def _content(content: object) -> str:
    """A message's text; OpenAI's list-of-parts form keeps its text parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


@dataclass(frozen=True)
class OptionScores:
    """Log-probability of each token of each option, as a continuation of the prompt."""

    token_logprobs: tuple[tuple[float, ...], ...]
    usage: Usage

    def totals(self, length_normalised: bool = False) -> np.ndarray:
        """Log-likelihood of each option (mean per token when length-normalised)."""
        sums = np.array([sum(t) for t in self.token_logprobs])
        if not length_normalised:
            return sums
        return sums / np.maximum([len(t) for t in self.token_logprobs], 1)


@dataclass(frozen=True)
class ModelOutput:
    """What one rung produced for one item: the run log's per-model columns.

    `cost` is set only by backends that know it (replay); others are priced by the runtime.
    `quality` is set only by replay (the logged grade). `margin` and `entropy` describe the
    softmax over a choice item's options (`option_signals`); NaN for generated answers. For
    a choice item `logprob_mean` is the chosen option's length-normalised log-likelihood."""

    answer: str | None
    text: str
    confidence: float
    logprob_mean: float
    logprob_min: float
    tokens_in: float  # NaN where unknown (a log without token counts)
    tokens_out: float
    latency_s: float
    sample_share: float = math.nan
    margin: float = math.nan
    entropy: float = math.nan
    cost: float | None = None
    quality: float | None = None

    def signals(self) -> dict[str, float]:
        return {
            "confidence": self.confidence,
            "logprob_mean": self.logprob_mean,
            "logprob_min": self.logprob_min,
            "tokens_out": float(self.tokens_out),
            "sample_share": self.sample_share,
            "margin": self.margin,
            "entropy": self.entropy,
        }


@dataclass(frozen=True)
class OptionSignals:
    """How sure a model is among an item's options, from their log-likelihoods alone."""

    best: int  # index of the chosen (most likely) option
    confidence: float  # softmax share of the chosen option
    margin: float  # its share minus the runner-up's (the share itself with one option)
    entropy: float  # entropy of the shares / log(number of options): 0 sure, 1 uniform


def option_signals(totals: np.ndarray) -> OptionSignals:
    """Softmax the options' log-likelihoods and summarise it; every option-scoring backend
    has these numbers, so the signals cost no extra model call."""
    totals = np.asarray(totals, dtype=np.float64)
    shares = np.exp(totals - totals.max())
    shares /= shares.sum()
    best = int(np.argmax(totals))
    top2 = np.partition(shares, -2)[-2:] if len(shares) > 1 else np.array([0.0, 1.0])
    entropy = 0.0
    if len(shares) > 1:
        positive = shares[shares > 0]  # 0 log 0 = 0; underflowed shares carry no entropy
        entropy = float(-(positive * np.log(positive)).sum() / math.log(len(shares)))
    return OptionSignals(best, float(shares[best]), float(top2[1] - top2[0]),
                         min(max(entropy, 0.0), 1.0))  # rounding must not leave [0, 1]


def _logprob_stats(logprobs: Sequence[float] | None) -> tuple[float, float]:
    if not logprobs:
        return math.nan, math.nan
    return float(np.mean(logprobs)), float(np.min(logprobs))


class Backend(ABC):
    """A language model behind generate / score_options; `answer` builds on both."""

    length_normalised = False  # choose options by mean rather than total log-likelihood
    scores_options = True  # False: choice items are answered by generation (chat-only APIs)

    @abstractmethod
    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        """Continuation of `prompt` (greedy at temperature 0) with each token's
        log-probability."""

    @abstractmethod
    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        """Log-probabilities of each option's tokens following `prompt`."""

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections or memory."""

    async def complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                       ) -> Generation:
        """A pass-through completion of a client's prompt."""
        return await self.generate(prompt, max_tokens=params.max_tokens or PASSTHROUGH_MAX_TOKENS,
                                   stop=params.stop or (), temperature=params.temperature or 0.0)

    async def chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                   ) -> Generation:
        """A pass-through chat call: the messages rendered as one prompt."""
        return await self.complete(render_messages(messages), params)

    def stream_complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                        ) -> TextStream:
        """`complete` as a stream; by default the whole generation is one delta."""
        return TextStream(_one_delta(lambda: self.complete(prompt, params)))

    def stream_chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                    ) -> TextStream:
        return self.stream_complete(render_messages(messages), params)

    async def answer(self, item: Item, template: str = DEFAULT_TEMPLATE,
                     max_tokens: int = 32, params: GenerationParams | None = None
                     ) -> ModelOutput:
        """Run the model on an item: options by likelihood for choice items, else generation.

        Confidence is the softmax over the options' log-likelihoods of the chosen option
        (choice) or the probability of the whole generated answer (exp of the token sum).
        `params` overrides max_tokens, the newline stop and temperature 0 where set."""
        params = params or DEFAULT_PARAMS
        prompt = template.format(prompt=item.prompt)
        if item.type == "choice" and self.scores_options:
            return self._choose(item, await self.score_options(prompt, item.options or ()))
        if item.type == "choice":
            listed = "; ".join(item.options or ())
            prompt = template.format(
                prompt=f"{item.prompt}\nOptions: {listed}\nReply with one option, word for word."
            )
        stop = ("\n",) if params.stop is None else params.stop
        generation = await self.generate(prompt, max_tokens=params.max_tokens or max_tokens,
                                         stop=stop, temperature=params.temperature or 0.0)
        logprobs = generation.token_logprobs
        mean, low = _logprob_stats(logprobs)
        confidence = math.exp(sum(logprobs)) if logprobs else math.nan
        usage = generation.usage
        return ModelOutput(extract_answer(item, generation.text), generation.text, confidence,
                           mean, low, usage.tokens_in, usage.tokens_out, usage.latency_s)

    def _choose(self, item: Item, scores: OptionScores) -> ModelOutput:
        summary = option_signals(scores.totals(self.length_normalised))
        best = summary.best
        mean, low = _logprob_stats(scores.token_logprobs[best])
        option = (item.options or ())[best]
        usage = scores.usage
        return ModelOutput(option, option, summary.confidence, mean, low, usage.tokens_in,
                           len(scores.token_logprobs[best]), usage.latency_s,
                           margin=summary.margin, entropy=summary.entropy)


async def _one_delta(call: Callable[[], Awaitable[Generation]]) -> AsyncIterator[str | Usage]:
    """The call made on first iteration (a stream never iterated calls nothing)."""
    generation = await call()
    if generation.text:
        yield generation.text
    yield generation.usage
