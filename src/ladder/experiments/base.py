"""What every experiment is: the units it can run on a data folder (one per dataset it
recognises there), one unit run in a worker process, and a results-page section rendered
from all units' results.

Units are the grain of parallelism: `ladder experiments` hands every (experiment, unit) pair
to a joblib pool, so a unit's result must be JSON-able (it also lands in summary.json) and
its figures are written by the worker itself, under `out/<experiment>/`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ladder.experiments.data import DataDir

HOLDS, FAILS, UNTESTABLE = "holds", "does not hold", "not testable here"
UNSETTLED = "not settled"  # the interval spans the claim


@dataclass(frozen=True)
class Finding:
    """Our measurement of one seed claim (a key of `ladder.experiments.claims.CLAIMS`):
    the figure with its interval, and the verdict the interval supports."""

    claim: str
    measured: str
    verdict: str


@dataclass
class Section:
    """An experiment's part of the results page: Markdown (links relative to the page's
    folder) and its findings for the claims table."""

    markdown: str
    findings: list[Finding] = field(default_factory=list)


class Experiment(ABC):
    """One experiment of `ladder experiments`; subclasses set `name` and `title`."""

    name: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def units(self, data: DataDir) -> list[str]:
        """The units this experiment runs on `data` ([] when none of its datasets is there)."""

    @abstractmethod
    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        """Run one unit; write its files under `out` (this experiment's folder) and return
        JSON-able results."""

    @abstractmethod
    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        """The page section from every unit's results (in `units` order); `out` is this
        experiment's folder, `page` the results page (for relative links)."""

    def cost(self, unit: str) -> float:
        """A rough relative run time (beyond the shared evaluation), so the pool starts
        the longest units first."""
        return 1.0

    def shared(self, unit: str) -> list[str]:
        """The Zellinger benchmarks whose shared evaluation (`DataDir.evaluation`) the unit
        reads: the runner computes those first, so no worker waits on another's."""
        return []


class BenchmarkExperiment(Experiment):
    """An experiment with one unit per Zellinger benchmark, reading that benchmark's shared
    evaluation (tradeoff, statistical, envelope)."""

    def units(self, data: DataDir) -> list[str]:
        return data.benchmarks("zellinger")

    def shared(self, unit: str) -> list[str]:
        return [unit]


# name → "module:class"; imported on demand so a worker loads only what it runs
REGISTRY = {
    "tradeoff": "ladder.experiments.tradeoff:Tradeoff",
    "statistical": "ladder.experiments.statistical:Statistical",
    "regret": "ladder.experiments.regret_report:Regret",
    "learning": "ladder.experiments.learning:Learning",
    "envelope": "ladder.experiments.envelope:Envelope",
    "router": "ladder.experiments.router:RouterComparison",
    "profile": "ladder.experiments.moa:Profile",
    "monotonicity": "ladder.experiments.moa:Monotonicity",
    "judge": "ladder.experiments.judge:Judge",
}
NAMES = tuple(REGISTRY)


def experiment(name: str) -> Experiment:
    """The experiment registered under `name`."""
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)()


def relative(path: Path, page: Path) -> str:
    """A link to `path` from the page's folder."""
    import os

    return os.path.relpath(path, page.parent)
