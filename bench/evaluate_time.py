"""Wall time of a full evaluation of Zellinger MMLU (every family, default λ sweep).

Times the library path in process — load_runlog + QueryTable.from_runlog + split_table +
evaluate — with a per-family breakdown taken from evaluate's progress callback, then
the `ladder evaluate` CLI in a subprocess (wall clock and max RSS) when it is installed.
Usage: .venv/bin/python bench/evaluate_time.py [--no-cli]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, require_data
from ladder.evaluate.experiment import evaluate
from ladder.evaluate.split import split_table
from ladder.runlog import QueryTable, load_runlog

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess run")
    args = parser.parse_args()
    data = require_data()

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    log = load_runlog(data)
    t1 = time.perf_counter()
    table = QueryTable.from_runlog(log, benchmark="mmlu")
    t2 = time.perf_counter()
    train, test, how = split_table(table)
    t3 = time.perf_counter()
    ev = evaluate(train, test, split=how,
                  progress=lambda d, _n: marks.append((d.split()[0], time.perf_counter())))
    t4 = time.perf_counter()

    family_s: dict[str, float] = {}
    previous = t3
    for family, stamp in marks:
        family_s[family] = family_s.get(family, 0.0) + stamp - previous
        previous = stamp
    total = t4 - t0
    print(f"Machine: {machine()}\n")
    print(f"Zellinger MMLU: {table.n} queries × {table.k} models, {ev.n_train} train / "
          f"{ev.n_test} test, {len(ev.points)} policy points\n")
    print("| step | seconds | share |")
    print("|---|---:|---:|")
    steps = [("load_runlog (read + convert + validate)", t1 - t0),
             ("QueryTable.from_runlog(benchmark='mmlu')", t2 - t1), ("split_table", t3 - t2)]
    steps += [(f"evaluate: fit + replay '{f}' ({sum(m[0] == f for m in marks)} fits)", s)
              for f, s in family_s.items()]
    steps += [("evaluate: summaries + predictor report", t4 - previous),
              ("**total, library (in process)**", total)]
    for name, s in steps:
        print(f"| {name} | {s:.2f} | {100 * s / total:.0f}% |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nin-process peak RSS {rss:,.0f} MiB; library total {total:.1f} s vs target "
          f"{TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'NOT met'}")

    cli = Path(sys.executable).with_name("ladder")
    if args.no_cli:
        return
    if not cli.exists():
        print(f"CLI: {cli} not installed; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(cli), "evaluate", str(data), "--benchmark", "mmlu",
                   "--json", str(Path(tmp) / "x.json")]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        print(f"CLI: `{' '.join(command)}` failed (exit {done.returncode}): "
              f"{done.stderr.strip().splitlines()[-1:]}")
        return
    print(f"CLI: `ladder evaluate <zellinger-cascades> --benchmark mmlu --json x.json` "
          f"{wall:.1f} s wall, max RSS {child:,.0f} MiB vs target {TARGET_S:.0f} s: "
          f"{'met' if wall <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
