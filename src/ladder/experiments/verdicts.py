"""Verdicts from intervals, shared by the experiments: a claim holds when the whole
interval is on its side, fails when the whole interval is on the other, and is not settled
when the interval spans it; a claim made for every benchmark holds only where it holds on
each, and fails where it fails on any. Also the number and interval cells every section's
tables use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ladder.experiments.base import FAILS, HOLDS, UNSETTLED


def at_least(interval: Mapping[str, float | None], claim: float) -> str:
    """The verdict on 'the value is at least `claim`' from {"low", "high"}."""
    low, high = interval.get("low"), interval.get("high")
    if low is not None and low >= claim:
        return HOLDS
    if high is not None and high < claim:
        return FAILS
    return UNSETTLED


def overall(verdicts: Sequence[str]) -> str:
    """A universal claim over several benchmarks."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else UNSETTLED


def number(x: float | None, spec: str = ".3f", suffix: str = "") -> str:
    """A table cell: '—' for a missing (None or NaN) value."""
    return "—" if x is None or x != x else format(x, spec) + suffix


def ci(interval: Mapping[str, float | None] | None, spec: str = ".3f", suffix: str = "") -> str:
    """'point [low, high]' ('—' for a missing end, or for no interval at all)."""
    if not interval:
        return "—"
    point, low, high = (number(interval.get(k), spec, suffix) for k in ("point", "low", "high"))
    return f"{point} [{low}, {high}]"
