"""The data folder `ladder experiments` runs on: which known logs it holds, loaded once per
process, and the one evaluation per Zellinger benchmark that several experiments share.

A folder is recognised by its layout (the converters' `detect_format`), not its name, so
`--data` may point at any folder whose subfolders are logs ladder can read. The shared
evaluation is computed by the first worker that asks and read from disk by the others
(a file lock serialises them), so tradeoff, statistical and envelope fit it once per run.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import joblib
import pandas as pd

from ladder.evaluate.experiment import FAMILIES, Evaluation, evaluate
from ladder.evaluate.split import split_table
from ladder.runlog import QueryTable, load_runlog
from ladder.runlog.converters import detect_format
from ladder.runlog.schema import RunLogError

READ = ("zellinger", "mot", "routellm")  # the layouts some experiment reads
KINDS = (*READ, "routerdc")  # the layouts recognised (and listed on the page)
ZELLINGER_BENCHMARKS = ("mmlu", "medmcqa", "triviaqa", "gsm8k")


def default_data() -> Path | None:
    """`../shared/data` next to the working directory or the installed repository."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def discover(root: Path) -> dict[str, Path]:
    """The first folder of each known layout: `root` itself or one of its subfolders."""
    found: dict[str, Path] = {}
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        try:
            kind = detect_format(folder)
        except (RunLogError, OSError):
            continue
        if kind in KINDS:
            found.setdefault(kind, folder)
    return found


@lru_cache(maxsize=8)
def _log(path: Path, kind: str) -> pd.DataFrame:
    return load_runlog(path, kind)


@dataclass
class DataDir:
    """A data folder and what it holds; `cache` is where shared evaluations are kept for
    one run (set by the runner; None computes them in place every time)."""

    root: Path
    cache: Path | None = None
    found: dict[str, Path] = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.found = discover(self.root)

    def has(self, kind: str) -> bool:
        return kind in self.found

    def log(self, kind: str) -> pd.DataFrame:
        """The validated run log of a layout (loaded once per process)."""
        return _log(self.found[kind], kind)

    def table(self, kind: str, benchmark: str | None = None,
              models: list[str] | None = None) -> QueryTable:
        return QueryTable.from_runlog(self.log(kind), models=models, benchmark=benchmark)

    def benchmarks(self, kind: str) -> list[str]:
        """The log's benchmarks; for Zellinger, in the order of ZELLINGER_BENCHMARKS."""
        if not self.has(kind):
            return []
        names = list(dict.fromkeys(self.log(kind)["benchmark"].dropna()))
        order = {b: i for i, b in enumerate(ZELLINGER_BENCHMARKS)}
        return sorted(names, key=lambda b: (order.get(b, len(order)), b))

    def split(self, kind: str, benchmark: str | None = None,
              models: list[str] | None = None) -> tuple[QueryTable, QueryTable, str]:
        """(train, test, how): the log's split, else a seeded 50/50 split (seed 0)."""
        return split_table(self.table(kind, benchmark, models))

    def evaluation(self, benchmark: str) -> tuple[QueryTable, QueryTable, str, Evaluation]:
        """Every family fitted on a Zellinger benchmark's train split and replayed on its
        test split (20 λ, 90% intervals from 1,000 resamples), computed once per run."""
        train, test, how = self.split("zellinger", benchmark)
        if self.cache is None:
            return train, test, how, _shared(train, test, how)
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / f"evaluation-{benchmark}.pkl"
        with open(self.cache / f"evaluation-{benchmark}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                return train, test, how, joblib.load(path)
            result = _shared(train, test, how)
            joblib.dump(result, path)
        return train, test, how, result


def _shared(train: QueryTable, test: QueryTable, how: str) -> Evaluation:
    return evaluate(train, test, split=how, families=FAMILIES, n_jobs=1)
