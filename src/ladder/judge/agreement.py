"""Whether two short answers agree: the label a reference rung gives another rung's answer
without any model call.

Short and numeric answers can be compared after normalisation (case, punctuation,
articles, number words); long free text cannot (two correct paragraphs rarely match word
for word), so for it `agreement` says it cannot tell and a judge model is asked instead.
"""

from __future__ import annotations

import math

from ladder.runlog.converters.answers import normalise_letter, normalise_number, normalise_text
from ladder.tasks import grade_free_text

SHORT_WORDS = 6  # answers of at most this many words are compared by agreement


def _letter(answer: str) -> str | None:
    """A bare option letter ('B', '(b)', 'B.'), or None."""
    stripped = answer.strip().strip("().:").strip()
    return normalise_letter(stripped) if len(stripped) == 1 and stripped.isalpha() else None


def _number(answer: str) -> float | None:
    """The answer's value when the whole answer is one number, else None."""
    value = normalise_number(answer)
    words = (normalise_text(answer) or "").replace(",", "").split()
    if value is None or len(words) != 1:
        return None
    return float(value)


def is_short(answer: str | None, short_words: int = SHORT_WORDS) -> bool:
    """An answer agreement can judge: a letter, a number or at most `short_words` words."""
    if answer is None:
        return True
    return len((normalise_text(answer) or "").split()) <= short_words


def agreement(candidate: str | None, reference: str | None,
              short_words: int = SHORT_WORDS) -> float | None:
    """1.0 when a short candidate gives the reference's answer, 0.0 when it gives another;
    None when agreement cannot tell (either answer is long free text, or the reference
    gave no answer to compare with).

    A candidate with no answer disagrees with any reference answer. Letters compare as
    letters, whole-number answers by value, other short answers as whole words after
    normalisation, either containing the other ("Paris" and "Paris, France" agree;
    "Paris or Lyon" hedges and does not)."""
    if reference is None or not reference.strip():
        return None
    if candidate is None or not candidate.strip():
        return 0.0
    if not (is_short(candidate, short_words) and is_short(reference, short_words)):
        return None
    letters = _letter(candidate), _letter(reference)
    if None not in letters:
        return float(letters[0] == letters[1])
    numbers = _number(candidate), _number(reference)
    if None not in numbers:
        return float(math.isclose(numbers[0], numbers[1], rel_tol=1e-6, abs_tol=1e-9))
    if normalise_text(candidate) is None or normalise_text(reference) is None:
        return float(candidate.strip().lower() == reference.strip().lower())
    return float(grade_free_text(candidate, reference) or grade_free_text(reference, candidate))
