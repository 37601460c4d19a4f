"""Task items: what a cascade is asked, and how an answer is graded.

A task file is JSON Lines, one item per line: `id`, `prompt`, `type` (`choice`,
`short` or `number`), `options` (choice only) and `reference` (the correct option,
the accepted answer or list of answers, or the number). Extra keys are kept in
`Item.meta` (e.g. `domain`, written to the run log as the benchmark). A `short` item may
list `distractors` (wrong answers a reader could confuse with the reference): it is then
graded as free text by `grade_free_text`, not by exact equality.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ladder.runlog.converters.answers import normalise_number, normalise_text

TYPES = ("choice", "short", "number")


class TaskError(ValueError):
    """A task file or item that cannot be used; the message names the line and key."""


@dataclass(frozen=True)
class Item:
    """One query. `reference` is None when the answer is unknown (live traffic)."""

    id: str
    prompt: str
    type: str = "short"
    options: tuple[str, ...] | None = None
    reference: str | float | tuple[str, ...] | None = None
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def domain(self) -> str | None:
        return self.meta.get("domain")


def item_from_dict(data: dict, where: str = "item") -> Item:
    """Validate one task record; errors name `where` (e.g. 'tasks.jsonl line 3') and the key."""
    if not isinstance(data, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("id", "prompt"):
        if not isinstance(data.get(key), str | int) or str(data.get(key)).strip() == "":
            raise TaskError(f"{where}: '{key}' is required and must be a non-empty string")
    kind = data.get("type", "choice" if "options" in data else "short")
    if kind not in TYPES:
        raise TaskError(f"{where}: 'type' is {kind!r}; choose one of {', '.join(TYPES)}")
    options = data.get("options")
    reference = data.get("reference")
    if kind == "choice":
        if (not isinstance(options, list) or len(options) < 2
                or not all(isinstance(o, str) and o.strip() for o in options)):
            raise TaskError(f"{where}: 'options' must be a list of at least two non-empty strings")
        if len(set(options)) != len(options):
            raise TaskError(f"{where}: 'options' has duplicates")
        if reference is not None and reference not in options:
            raise TaskError(f"{where}: 'reference' {reference!r} is not one of the options")
        options = tuple(options)
    elif options is not None:
        raise TaskError(f"{where}: 'options' is only for type 'choice'")
    if kind == "number" and reference is not None:
        try:
            reference = float(reference)
        except (TypeError, ValueError):
            raise TaskError(f"{where}: 'reference' must be a number for type 'number'") from None
    if kind == "short" and isinstance(reference, list):
        reference = tuple(str(r) for r in reference)
    distractors = data.get("distractors")
    if distractors is not None and (kind != "short" or not isinstance(distractors, list)
                                    or not all(isinstance(d, str) for d in distractors)):
        raise TaskError(f"{where}: 'distractors' must be a list of strings, on a 'short' item")
    known = {"id", "prompt", "type", "options", "reference"}
    meta = {k: v for k, v in data.items() if k not in known}
    return Item(str(data["id"]), data["prompt"], kind, options, reference, meta)


def _parse_lines(lines: Iterable[str], name: str) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise TaskError(f"{where}: not valid JSON ({error.msg})") from None
        item = item_from_dict(data, where)
        if item.id in seen:
            raise TaskError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise TaskError(f"{name}: no items")
    return items


def load_tasks(path: str | Path) -> list[Item]:
    """Read and validate a JSONL task file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TaskError(f"cannot read task file {path}: {error.strerror}") from None
    return _parse_lines(text.splitlines(), path.name)


def builtin_tasks(domains: Sequence[str] | None = None) -> list[Item]:
    """The multiple-choice set shipped with ladder (written for it; several domains)."""
    files = sorted(
        (f for f in (resources.files(__name__) / "builtin").iterdir()
         if f.name.endswith(".jsonl")),
        key=lambda f: f.name,
    )
    items = []
    for f in files:
        if domains is None or f.name.removesuffix(".jsonl") in domains:
            items += _parse_lines(f.read_text(encoding="utf-8").splitlines(), f.name)
    return items


def grade(item: Item, answer: str | None) -> float | None:
    """Quality in [0, 1] of an extracted answer; None when the item has no reference."""
    if item.reference is None:
        return None
    if answer is None:
        return 0.0
    if item.type == "choice":
        return float(answer == item.reference)
    if item.type == "number":
        value = normalise_number(answer)
        return float(value is not None and math.isclose(float(value), float(item.reference),
                                                        rel_tol=1e-6, abs_tol=1e-9))
    accepted = item.reference if isinstance(item.reference, tuple) else (item.reference,)
    if "distractors" in item.meta:
        return float(any(grade_free_text(answer, str(a), item.meta["distractors"],
                                         item.prompt) for a in accepted))
    return float(normalise_text(answer) in {normalise_text(str(a)) for a in accepted})


_SYMBOLS = re.compile(r"[^\w\s]")
_NUMBER = re.compile(r"^\d+$")  # normalised: no signs, points or commas left
_NUMBER_WORDS = {w: str(k) for k, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty"))}


def _words(text: str | None) -> tuple[str, ...]:
    """Normalised words, non-ASCII punctuation ("“Paris”") split off, number words as
    digits ("four" → "4")."""
    words = _SYMBOLS.sub(" ", normalise_text(text) or "").split()
    return tuple(_NUMBER_WORDS.get(w, w) for w in words)


def _at(words: tuple[str, ...], phrase: tuple[str, ...]) -> list[int]:
    """Where `phrase` occurs in `words` as whole words, in order and adjacent; a word of
    `words` may be the plural of the phrase's ("frogs are amphibians" has "amphibian")."""
    n = len(phrase)
    return [k for k in range(len(words) - n + 1) if n and all(
        w in (p, p + "s", p + "es") for w, p in zip(words[k:k + n], phrase, strict=True))]


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    return bool(_at(words, phrase))


def grade_free_text(answer: str | None, reference: str, distractors: Sequence[str] = (),
                    question: str = "") -> bool:
    """Whether a free-text answer gives `reference`, as a person would judge it.

    Compared as whole words after normalisation (case, punctuation, articles; number words
    as digits), so "The answer is carbon dioxide." and "It is the Amazon River" pass: the
    reference must occur in the answer, not only next to an "or" ("carbon dioxide or
    water" hedges), and no distractor (the item's other options) may. For a numeric
    reference another number fails it too, unless the question states it or the answer
    ends on the reference ("7 + 5 = 12" and "3 × 7 = 21" pass, "144 / 12 = 11" does not).
    A distractor lying inside the reference ("vitamin A" in "vitamin D" once the
    article-like "a" is dropped) cannot be told apart and is ignored. Not caught: a list of
    candidates none of which is an option ("Paris, Rome, Berlin")."""
    words, wanted = _words(answer), _words(reference)
    padded = ("", *words, "")
    if not any("or" not in (padded[k], padded[k + len(wanted) + 1])
               for k in _at(words, wanted)):
        return False
    if any(_contains(words, d) for d in map(_words, distractors) if not _contains(wanted, d)):
        return False
    if not _NUMBER.match(" ".join(wanted)):
        return True
    numbers = [w for w in words if _NUMBER.match(w)]
    stated = set(_words(question)) | set(wanted)
    return numbers[-1] == wanted[0] or all(n in stated for n in numbers)


def free_text(item: Item) -> Item:
    """A choice item asked without its options: a `short` item whose reference is the
    correct option, graded by `grade_free_text` against the other options."""
    if item.type != "choice":
        raise TaskError(f"{item.id}: only a choice item can be asked as free text")
    others = [o for o in item.options or () if o != item.reference]
    return Item(item.id, item.prompt, "short", None, item.reference,
                {**item.meta, "distractors": others})


def extract_answer(item: Item, text: str) -> str | None:
    """The answer in a generated text: the option it names, the number, or the first line."""
    if item.type == "number":
        return normalise_number(text)
    first_line = text.strip().split("\n", 1)[0].strip()
    if item.type == "choice":
        said = normalise_text(first_line) or ""
        for option in item.options or ():
            if normalise_text(option) == said:
                return option
        named = [o for o in item.options or () if normalise_text(o) and normalise_text(o) in said]
        return max(named, key=len) if named else None
    return normalise_text(first_line)
