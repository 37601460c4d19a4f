"""Verdicts from intervals, shared by the experiments: a claim holds when the whole
interval is on its side, fails when the whole interval is on the other, and is not settled
when the interval spans it; a claim made for every benchmark holds only where it holds on
each, and fails where it fails on any."""

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


def ci(interval: Mapping[str, float | None], spec: str = ".3f", suffix: str = "") -> str:
    """'point [low, high]' ('—' for a missing end)."""
    def one(x: float | None) -> str:
        return "—" if x is None else format(x, spec) + suffix
    return f"{one(interval.get('point'))} [{one(interval.get('low'))}, {one(interval.get('high'))}]"
