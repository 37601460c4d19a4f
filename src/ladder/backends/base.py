"""The one small interface every model sits behind.

A backend does two things a cascade needs from a language model: generate text
with per-token log-probabilities, and score the options of a multiple-choice item
by their log-likelihood after the prompt. `answer` turns either into one rung's
output for an item (answer, signals, usage); the replay backend answers from a
run log instead. Cost is not a backend's business: the runtime prices usage.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ladder.tasks import Item, extract_answer

DEFAULT_TEMPLATE = "Question: {prompt}\nAnswer:"


def with_option(prompt: str, option: str) -> str:
    """The text whose tail is scored for an option: prompt, one space unless either side
    already has one, option."""
    sep = "" if prompt[-1:].isspace() or option[:1].isspace() else " "
    return prompt + sep + option


class BackendError(RuntimeError):
    """A model call failed (server unreachable, bad response, missing weights)."""


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
                       stop: Sequence[str] = ("\n",)) -> Generation:
        """Greedy continuation of `prompt` with the log-probability of each token."""

    @abstractmethod
    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        """Log-probabilities of each option's tokens following `prompt`."""

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections or memory."""

    async def answer(self, item: Item, template: str = DEFAULT_TEMPLATE,
                     max_tokens: int = 32) -> ModelOutput:
        """Run the model on an item: options by likelihood for choice items, else generation.

        Confidence is the softmax over the options' log-likelihoods of the chosen option
        (choice) or the probability of the whole generated answer (exp of the token sum)."""
        prompt = template.format(prompt=item.prompt)
        if item.type == "choice" and self.scores_options:
            return self._choose(item, await self.score_options(prompt, item.options or ()))
        if item.type == "choice":
            listed = "; ".join(item.options or ())
            prompt = template.format(
                prompt=f"{item.prompt}\nOptions: {listed}\nReply with one option, word for word."
            )
        generation = await self.generate(prompt, max_tokens=max_tokens)
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
