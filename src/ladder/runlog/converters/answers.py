"""Answer normalisation shared by converters, so agreement between models is meaningful."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_FINAL_NUMBER = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_ANY_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_LETTER = re.compile(r"^\s*\(?([A-Ja-j])\)?(?:[.:)\s]|$)")


def normalise_text(text: str | None) -> str | None:
    """Lower-case, strip punctuation and articles, collapse spaces (SQuAD-style)."""
    if text is None:
        return None
    text = text.lower().strip()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split()) or None


def normalise_number(text: str | None) -> str | None:
    """The final numeric answer ('#### x' if present, else the last number), canonical form."""
    if text is None:
        return None
    match = _FINAL_NUMBER.search(text)
    found = match.group(1) if match else None
    if found is None:
        numbers = _ANY_NUMBER.findall(text)
        found = numbers[-1] if numbers else None
    if found is None:
        return None
    try:
        value = float(found.replace(",", ""))
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def normalise_letter(text: str | None) -> str | None:
    """A multiple-choice letter ('B', '(b)', 'B. ...') as an upper-case letter."""
    if text is None:
        return None
    match = _LETTER.match(text)
    return match.group(1).upper() if match else normalise_text(text)
