"""The judge: one label in [0, 1] for a rung's answer to a query, or none.

With a reference rung's answer it first tries agreement (`ladder.judge.agreement`: short
and numeric answers, no model call, source "reference"); where agreement cannot tell, or
with no reference at all, it asks the judge model with the fixed rubric (source "judge").
A judge model that fails, times out or answers garbage gives no label (None, counted by
kind), never a made-up one: the cell stays unlabelled and nothing fitted on it is misled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from ladder.backends.base import BackendError
from ladder.config import JudgeSpec
from ladder.judge.agreement import SHORT_WORDS, agreement
from ladder.judge.rubric import OPTIONS, WORDS, JudgeGarbage, Rubric, read_words, render, yes_share
from ladder.rung import Rung
from ladder.runlog.schema import LABEL_SOURCES

Mode = Literal["auto", "agreement", "model"]
HUMAN, REFERENCE, JUDGE = LABEL_SOURCES  # a label's source


@dataclass(frozen=True)
class Verdict:
    """A label (None: no label, with why in `error`), where it came from, and what the
    judge model's call cost (0 for agreement)."""

    quality: float | None
    source: str | None
    cost: float = 0.0
    error: str | None = None


@dataclass
class Judge:
    """Grades answers against a reference answer or alone (see the module docstring).

    model: the rung that judges (None: agreement only). mode: "auto" (agreement where it
    can tell, else the model), "agreement" (never the model) or "model" (always the
    model, even for short answers). `failures` counts the labels not given, by kind
    (timeout, backend, garbage, undecidable)."""

    model: Rung | None = None
    reference: str | None = None  # the reference rung's name (recorded; None: judge alone)
    rubric: Rubric = field(default_factory=Rubric)
    mode: Mode = "auto"
    short_words: int = SHORT_WORDS
    timeout_s: float = 30.0
    failures: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.mode == "model" and self.model is None:
            raise ValueError("judge mode 'model' needs a judge model")
        if self.model is None and self.reference is None:
            raise ValueError("a judge needs a judge model, a reference rung, or both")

    @property
    def provenance(self) -> str:
        """What made the labels, recorded with each one: the judge model, the reference
        rung, the rubric's digest and the mode."""
        model = self.model.name if self.model is not None else "none"
        return (f"judge={model};reference={self.reference or 'none'};"
                f"rubric={self.rubric.digest};mode={self.mode}")

    def own_verdict(self, rung: str) -> Verdict | None:
        """The reference rung's label of its own answer when no judge model can grade it:
        1.0, the reference agrees with itself; None for any other rung, or with a model."""
        if rung == self.reference and self.model is None:
            return Verdict(1.0, REFERENCE)
        return None

    async def grade(self, query: str | None, answer: str | None,
                    reference: str | None = None, *, answer_text: str | None = None,
                    reference_text: str | None = None) -> Verdict:
        """The label of `answer` to `query`, given the reference rung's answer to it (None:
        grade the answer alone, as for the reference rung's own cells). Agreement compares
        the extracted answers; the judge model reads the whole texts where given
        (`answer_text`, `reference_text`), else the answers. A missing value (None, or a
        table's NaN) is no answer."""
        query, answer, reference, answer_text, reference_text = (
            _text(x) for x in (query, answer, reference, answer_text, reference_text))
        if reference is not None and self.mode != "model":
            agreed = agreement(answer, reference, self.short_words)
            if agreed is not None:
                return Verdict(agreed, REFERENCE)
        answer = answer_text or answer
        if answer is None or not answer.strip():
            return Verdict(0.0, JUDGE)  # no answer is no correct answer
        if self.model is None or self.mode == "agreement":
            return self._failed("undecidable", "agreement cannot compare these answers and "
                                "no judge model is asked")
        if query is None:
            return self._failed("undecidable", "the judge model needs the query's text")
        reference = reference_text or reference
        prompt = (render(self.rubric.solo_prompt, query, answer) if reference is None else
                  render(self.rubric.prompt, query, answer, reference))
        try:
            async with asyncio.timeout(self.timeout_s):
                quality, cost = await self._ask(self.model, prompt)
        except TimeoutError:
            return self._failed("timeout", f"the judge took longer than {self.timeout_s:g} s")
        except BackendError as error:
            return self._failed("backend", str(error))
        except JudgeGarbage as error:
            return self._failed("garbage", str(error))
        return Verdict(quality, JUDGE, cost)

    def _failed(self, kind: str, why: str) -> Verdict:
        self.failures[kind] += 1
        return Verdict(None, None, 0.0, f"{kind}: {why}")

    @staticmethod
    async def _ask(rung: Rung, prompt: str) -> tuple[float, float]:
        """P(yes) from the options' log-probabilities, or a yes/no read from the words of
        a model that cannot score options; with the call's cost."""
        if rung.backend.scores_options:
            scores, cost = await rung.score(prompt, OPTIONS)
            yes, no = scores.totals()
            return yes_share(float(yes), float(no)), cost
        generation = await rung.complete(prompt, WORDS)
        usage = generation.usage
        return read_words(generation.text), rung.cost(usage.tokens_in, usage.tokens_out,
                                                      usage.latency_s)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def judge_from_spec(spec: JudgeSpec, rungs: dict[str, Rung]) -> Judge:
    """The judge a config's `judge:` (or `server.shadow:`) section describes."""
    model = None if spec.model is None else rungs[spec.model]
    return Judge(model, spec.reference, Rubric(spec.prompt, spec.solo_prompt), spec.mode,
                 spec.short_words, spec.timeout_s)
