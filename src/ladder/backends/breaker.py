"""A circuit breaker per rung: stop calling a model that keeps failing, try it again later.

A dead or overloaded server otherwise costs every request its full timeout (and its
retries) before the cascade escalates; with the breaker open the rung fails at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ladder.backends.base import BackendError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(BackendError):
    """Refused without calling the backend: its breaker is open."""


class CircuitBreaker:
    """closed → open after `failures` consecutive failures → after `cooldown_s` one trial
    call (half-open) → closed on its success, open again on its failure.

    Callers bracket each call: `admit(name)` (raises CircuitOpen), then exactly one of
    `success()`, `failure()` or `release()` (the call ended without a verdict: cancelled)."""

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and cooldown_s > 0")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.consecutive = 0  # failures in a row (the last run of them, once open)
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial call is in flight

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self.clock() - self._opened_at >= self.cooldown_s else OPEN

    def admit(self, name: str) -> None:
        """Let a call through, or raise CircuitOpen naming `name`; half-open admits one."""
        state = self.state
        if state == CLOSED:
            return
        if state == HALF_OPEN and not self._trial:
            self._trial = True
            return
        assert self._opened_at is not None
        left = max(self.cooldown_s - (self.clock() - self._opened_at), 0.0)
        wait = (f"open for {math.ceil(left)} s" if state == OPEN
                else "half-open (a trial call is in flight)")
        raise CircuitOpen(f"{name}: circuit {wait} after {self.consecutive} failures")

    def success(self) -> None:
        self.consecutive = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        self.consecutive += 1
        if self._trial or self.consecutive >= self.failures:
            self._opened_at = self.clock()
        self._trial = False

    def release(self) -> None:
        self._trial = False
