"""Replaying a fitted policy over a 1,000,000-query log.

Fits ThresholdCascade and DPCascade (λ = 300, 5-model chain) on Zellinger MMLU train,
builds a 1M-query QueryTable by resampling the test rows (seeded numpy indexing, no
pandas) and times `policy.replay(big)`; peak memory from tracemalloc (a separate,
untimed pass) and the process's ru_maxrss.
Usage: .venv/bin/python bench/replay_1m.py [--n N] [--repeat R]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from _common import CHAIN, LAM, fitted_policies, machine
from ladder.policies.base import resolve_chain
from ladder.policies.stages import chain_scores
from ladder.runlog.table import QueryTable
from ladder.signals import stage_features


def seconds(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall seconds of fn over `repeat` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak traced allocation (MiB) while fn runs, above what was live before."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def table_mib(t: QueryTable) -> float:
    arrays = [t.query_ids, t.quality, t.cost, *t.signals.values(), t.answers, t.sample_share,
              t.prompt_len, t.split, t.benchmark]
    return sum(a.nbytes for a in arrays if a is not None) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    test, thr, dp = fitted_policies()

    t0 = time.perf_counter()
    pick = np.random.default_rng(0).integers(0, test.n, args.n)
    big = replace(test.rows(pick), query_ids=np.arange(args.n))
    build = time.perf_counter() - t0
    chain = resolve_chain(big, CHAIN)

    def thr_all_stages() -> object:
        return thr._outcome(big, chain, chain_scores(big, chain, thr.predictors_))

    def dp_all_stages() -> object:
        return dp._outcome(big, chain, chain_scores(big, chain, dp.predictors_))

    thr_total, dp_total = "threshold: replay (total)", "dp: replay (total)"
    rows: list[tuple[str, Callable[[], object]]] = [
        (thr_total, lambda: thr.replay(big)),
        ("  for comparison: every stage of every query at once, whole table", thr_all_stages),
        ("  of which features: stage_features, all 5 stages",
         lambda: [stage_features(big, chain, i) for i in range(len(chain))]),
        (dp_total, lambda: dp.replay(big)),
        ("  for comparison: every stage of every query at once, whole table", dp_all_stages),
    ]
    print(f"Machine: {machine()}\n")
    print(f"{args.n:,} queries resampled from {test.n} MMLU test rows (seed 0), built in "
          f"{build:.2f} s, table arrays {table_mib(big):.0f} MiB; chain {' → '.join(CHAIN)}, "
          f"λ = {LAM:g}; totals best / median of {args.repeat} runs, parts one run\n")
    print("| measurement | best s | median s | queries/s (best) | peak traced MiB |")
    print("|---|---:|---:|---:|---:|")
    best: dict[str, float] = {}
    for name, fn in rows:
        total = not name.startswith(" ")  # comparison rows: one run each, no memory pass
        lo, med = seconds(fn, args.repeat if total else 1)
        best[name] = lo
        peak = f"{peak_mib(fn):.0f}" if total else "–"
        print(f"| {name} | {lo:.2f} | {med:.2f} | {args.n / lo:,.0f} | {peak} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS (ru_maxrss): {rss:,.0f} MiB")
    for name in (thr_total, dp_total):
        met = "met" if best[name] <= 5 else "NOT met"
        print(f"{name}: {best[name]:.2f} s vs target 5 s: {met}")
    small, large = thr.replay(test), thr.replay(big)
    same = all(np.array_equal(p.replay(big).chosen, rule().chosen)
               for p, rule in ((thr, thr_all_stages), (dp, dp_all_stages)))
    print(f"sanity: threshold mean quality {large.mean_quality:.4f} on the {args.n:,}-query "
          f"log vs {small.mean_quality:.4f} on test; replay and all-stages decisions equal: {same}")
    print(f"same-run ratio: dp / threshold = {best[dp_total] / best[thr_total]:.1f}×")


if __name__ == "__main__":
    main()
