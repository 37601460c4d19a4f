"""Wall time of a full evaluation of Zellinger MMLU (every family, default λ sweep).

Times the library path in process — load_runlog + QueryTable.from_runlog + split_table +
evaluate — with a per-family breakdown from evaluate's progress callback, once with
the BLAS thread pool as it comes (OpenBLAS: one thread per core) and once limited to one
thread (threadpoolctl); then the `ladder evaluate` CLI in a subprocess (wall clock and max
RSS from /usr/bin/time -v), as it comes and with OPENBLAS_NUM_THREADS=1, when installed.
--busy N keeps N busy-loop processes running throughout, to see what a neighbour on a
shared 2-core machine does to each setting.
Usage: .venv/bin/python bench/evaluate_time.py [--no-cli] [--busy N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from _common import machine, require_data
from ladder.evaluate.experiment import evaluate
from ladder.evaluate.split import split_table
from ladder.predictors import QualityPredictor
from ladder.runlog import QueryTable, load_runlog

TARGET_S = 90.0  # target: a full evaluate of one benchmark, intervals on, on 2 cores


class FitClock:
    """Counts and times QualityPredictor.fit calls while installed (bench-only wrapper)."""

    def __init__(self) -> None:
        self.calls, self.seconds = 0, 0.0
        self._original = QualityPredictor.fit

    def __enter__(self) -> FitClock:
        original, clock = self._original, self

        def timed(predictor: QualityPredictor, X: object, y: object,
                  groups: object = None) -> QualityPredictor:
            t0 = time.perf_counter()
            try:
                return original(predictor, X, y, groups)
            finally:
                clock.calls += 1
                clock.seconds += time.perf_counter() - t0

        QualityPredictor.fit = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        QualityPredictor.fit = self._original  # type: ignore[method-assign]


def library(data: Path, blas_threads: int | None) -> dict[str, float]:
    """Seconds of each step of load + split + evaluate (ordered; 'total' last)."""
    marks: list[tuple[str, float]] = []
    limit = threadpool_limits(blas_threads, "blas") if blas_threads else nullcontext()
    with limit, FitClock() as fits:
        t0 = time.perf_counter()
        log = load_runlog(data)
        t1 = time.perf_counter()
        table = QueryTable.from_runlog(log, benchmark="mmlu")
        t2 = time.perf_counter()
        train, test, how = split_table(table)
        t3 = time.perf_counter()
        evaluate(train, test, split=how,
                 progress=lambda d, _n: marks.append((d.split()[0], time.perf_counter())))
        t4 = time.perf_counter()
    steps = {"load_runlog (read + convert + validate)": t1 - t0,
             "QueryTable.from_runlog(benchmark='mmlu')": t2 - t1, "split_table": t3 - t2}
    previous = t3
    swept = ("threshold", "dp", "auto", "random")  # fitted together per λ, in parallel
    for family, stamp in marks:
        name = (f"evaluate: predictors + λ sweep of {', '.join(swept)} (joblib) + replays"
                if family in swept else
                f"evaluate: fit + replay '{family}' ({sum(m[0] == family for m in marks)} λ)")
        steps[name] = steps.get(name, 0.0) + stamp - previous
        previous = stamp
    steps["evaluate: summaries + predictor report"] = t4 - previous
    steps[f"(inside the above) QualityPredictor.fit × {fits.calls} chain prefixes"] = fits.seconds
    steps["**total, library**"] = t4 - t0
    return steps


def cli(data: Path, env: dict[str, str]) -> str:
    """One CLI run: wall seconds and max RSS (via /usr/bin/time -v), or why it did not run."""
    exe = Path(sys.executable).with_name("ladder")
    if not exe.exists():
        return f"{exe} not installed; skipped"
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(exe), "evaluate", str(data), "--benchmark", "mmlu",
                   "--json", str(Path(tmp) / "x.json")]
        t0 = time.perf_counter()
        done = subprocess.run(timer + command, capture_output=True, text=True, check=False,
                              env={**os.environ, **env})
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        error = done.stderr.split("\tCommand being timed")[0].strip().splitlines()[-1:]
        return f"failed (exit {done.returncode}): {error}"
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    rss = f"{int(found[1]) / 1024:,.0f} MiB" if found else "n/a (no /usr/bin/time)"
    return f"{wall:.1f} s wall, max RSS {rss}: {'met' if wall <= TARGET_S else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess runs")
    parser.add_argument("--busy", type=int, default=0, help="busy-loop neighbours to run")
    args = parser.parse_args()
    data = require_data()
    neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                  for _ in range(args.busy)]
    try:
        report(data, args.no_cli, args.busy)
    finally:
        for child in neighbours:  # only the processes started above, by their handle
            child.kill()
            child.wait()


def report(data: Path, no_cli: bool, busy: int) -> None:
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    default = "/".join(sorted({f"{p['internal_api']} {p['num_threads']}" for p in blas})) or "none"

    runs = {f"BLAS as it comes ({default} threads)": library(data, None),
            "BLAS limited to 1 thread": library(data, 1)}
    print(f"Machine (after the runs): {machine()}; {busy} busy-loop neighbour(s)\n")
    print("Zellinger MMLU (1,816 queries × 9 models, 285 train / 1,531 test), default "
          "evaluate: 6 families, 21 λ, chains up to 3 models + the full ladder\n")
    names = list(runs)
    print(f"| step | {' | '.join(names)} |")
    print("|---|" + "---:|" * len(names))
    for step in runs[names[0]]:
        print(f"| {step} | " + " | ".join(f"{runs[n][step]:.2f} s" for n in names) + " |")
    totals = [runs[n]["**total, library**"] for n in names]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nin-process peak RSS {rss:,.0f} MiB; target {TARGET_S:.0f} s: " + ", ".join(
        f"{n}: {t:.1f} s {'met' if t <= TARGET_S else 'NOT met'}"
        for n, t in zip(names, totals, strict=True)))
    print(f"same-run ratio, BLAS as it comes / 1 thread: {totals[0] / totals[1]:.1f}×")
    if no_cli:
        return
    print("\n`ladder evaluate <zellinger-cascades> --benchmark mmlu --json x.json`, "
          f"target {TARGET_S:.0f} s:\n")
    print(f"- as it comes: {cli(data, {})}")
    print(f"- OPENBLAS_NUM_THREADS=1: {cli(data, {'OPENBLAS_NUM_THREADS': '1'})}")


if __name__ == "__main__":
    main()
