"""The judge model's fixed rubric: the prompts it is asked and how its yes/no becomes a
soft label in [0, 1].

A model that scores options gives P(yes) / (P(yes) + P(no)) over the two continuations:
a soft label that keeps the judge's doubt. A chat-only model (no prompt log-probabilities)
answers in words; its first word must be yes or no, read as 1 or 0, and anything else is
garbage: no label, never a guess. The prompts are part of the judge's settings (config
`judge.prompt` / `judge.solo_prompt`), and a digest of them is recorded with every label.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from ladder.backends.base import GenerationParams

# with a reference answer: is the candidate as correct as the reference?
REFERENCE_PROMPT = (
    "You are grading an answer to a question against a reference answer.\n"
    "Question: {query}\nReference answer: {reference}\nCandidate answer: {answer}\n"
    "Is the candidate answer as correct as the reference answer? Reply yes or no.\n"
    "Reply:")
# a judge model alone (no reference rung): is the answer correct?
SOLO_PROMPT = (
    "You are grading an answer to a question.\n"
    "Question: {query}\nProposed answer: {answer}\n"
    "Is the proposed answer correct? Reply yes or no.\n"
    "Reply:")
OPTIONS = (" yes", " no")
WORDS = GenerationParams(max_tokens=4, stop=("\n",), temperature=0.0)
_FIRST_WORD = re.compile(r"[a-z]+")


class JudgeGarbage(ValueError):
    """The judge model answered something that is neither yes nor no."""


def check_prompt(prompt: str, slots: tuple[str, ...]) -> str:
    """The prompt, if it names every slot it must fill (a config error otherwise)."""
    missing = [s for s in slots if "{" + s + "}" not in prompt]
    if missing:
        raise ValueError(f"must contain {', '.join('{' + s + '}' for s in missing)}")
    return prompt


def render(prompt: str, query: str, answer: str, reference: str | None = None) -> str:
    """The rubric filled in (str.replace, so braces in a query or answer are kept as they
    are)."""
    text = prompt.replace("{query}", query.strip()).replace("{answer}", answer.strip())
    return text if reference is None else text.replace("{reference}", reference.strip())


def yes_share(yes_logprob: float, no_logprob: float) -> float:
    """P(yes) renormalised over {yes, no}: the soft label."""
    top = max(yes_logprob, no_logprob)
    if math.isnan(yes_logprob) or math.isnan(no_logprob) or not math.isfinite(top):
        raise JudgeGarbage("the judge gave neither yes nor no any probability")
    yes, no = math.exp(yes_logprob - top), math.exp(no_logprob - top)
    return yes / (yes + no)


def read_words(text: str) -> float:
    """1.0 for a reply that starts with yes, 0.0 for no; JudgeGarbage otherwise."""
    match = _FIRST_WORD.search(text.strip().lower())
    word = match.group(0) if match else ""
    if word in ("yes", "y"):
        return 1.0
    if word in ("no", "n"):
        return 0.0
    raise JudgeGarbage(f"the judge replied {text.strip()[:40]!r}, not yes or no")


def digest(*prompts: str) -> str:
    """A short, stable name for the rubric text, recorded with every label."""
    return hashlib.sha256("\x1f".join(prompts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Rubric:
    """The two prompts a judge model is asked."""

    prompt: str = REFERENCE_PROMPT
    solo_prompt: str = SOLO_PROMPT

    @property
    def digest(self) -> str:
        return digest(self.prompt, self.solo_prompt)
