"""Latency of one in-process decision (features + predictor + rule, one query, one stage).

Fits ThresholdCascade and DPCascade (λ = 300, 5-model chain) on Zellinger MMLU train,
then times `decide` on pre-sliced one-row test tables, cycling through queries and the
stages where a decision is taken (all but the last), and times each part separately.
Usage: .venv/bin/python bench/decision_latency.py [--calls N]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import numpy as np

from _common import CHAIN, LAM, fitted_policies, machine, percentiles_us
from ladder.policies.base import resolve_chain
from ladder.policies.dp import value_basis
from ladder.policies.stages import chain_scores
from ladder.predictors import compile_linear
from ladder.signals import stage_features

Call = tuple[int, int]  # (test query, stage)


def timings(fns: list[Callable[[int, int], object]], calls: list[Call],
            warmup: int) -> np.ndarray:
    """(len(fns), len(calls)) nanoseconds of fn(query, stage). The functions are
    interleaved call by call, so a burst of load from elsewhere hits every row alike."""
    for q, s in calls[:warmup]:
        for fn in fns:
            fn(q, s)
    out = np.empty((len(fns), len(calls)), dtype=np.int64)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for k, (q, s) in enumerate(calls):
            fns[0](q, s)  # untimed touch: no row pays for first contact with this query's data
            for j, fn in enumerate(fns):
                t0 = clock()
                fn(q, s)
                out[j, k] = clock() - t0
    finally:
        gc.enable()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="timed calls per row (≥ 2000)")
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    test, thr, dp = fitted_policies()
    chain = resolve_chain(test, CHAIN)
    stages = list(range(len(CHAIN) - 1))  # no decision after the last rung

    rng = np.random.default_rng(0)
    queries = rng.permutation(test.n)
    calls: list[Call] = [(int(queries[k % test.n]), int(rng.choice(stages)))
                         for k in range(args.calls)]
    used = sorted({q for q, _ in calls})
    one = {q: test.rows(np.array([q])) for q in used}  # sliced beforehand, not timed
    full = chain_scores(test, chain, thr.predictors_)  # what a runtime has kept so far
    feats = {(q, s): stage_features(one[q], chain, s) for q in used for s in stages}
    earlier = {(q, s): full[q : q + 1, :s].copy() for q in used for s in stages}
    current = {(q, s): full[q : q + 1, s].copy() for q in used for s in stages}
    basis = {(q, s): value_basis(feats[q, s], full[q : q + 1, : s + 1]) for q in used
             for s in stages}
    # ridge continuation values as numpy, as DPCascade.decide runs them (since a3b991c)
    compiled = [compile_linear(m) if m is not None else None for m in dp.value_models_]

    def dp_rule(q: int, s: int) -> object:
        scores = np.hstack([earlier[q, s], current[q, s][:, None]])
        stop_value = scores.max(axis=1)
        return stop_value >= compiled[s].decision(value_basis(feats[q, s], scores))

    rows: list[tuple[str, Callable[[int, int], object]]] = [
        ("threshold: decide (total)", lambda q, s: thr.decide(one[q], s)),
        ("  resolve_chain", lambda q, s: resolve_chain(one[q], CHAIN)),
        ("  features: stage_features", lambda q, s: stage_features(one[q], chain, s)),
        ("  predictor: QualityPredictor.predict", lambda q, s: thr.predictors_[s].predict(
            feats[q, s])),
        ("  rule: score ≥ θ", lambda q, s: current[q, s] >= thr.thresholds_[s]),
        ("dp: decide, earlier_scores given", lambda q, s: dp.decide(one[q], s, earlier[q, s])),
        ("dp: decide, earlier_scores=None", lambda q, s: dp.decide(one[q], s)),
        ("  features: stage_features", lambda q, s: stage_features(one[q], chain, s)),
        ("  predictor: QualityPredictor.predict", lambda q, s: dp.predictors_[s].predict(
            feats[q, s])),
        ("  earlier scores recomputed (None case)", lambda q, s: chain_scores(
            one[q], chain[:s], dp.predictors_[:s]) if s else None),
        ("  rule: hstack + basis + value model (numpy) + compare", dp_rule),
        ("    of which value model (compile_linear numpy)",
         lambda q, s: compiled[s].decision(basis[q, s])),
        ("    for reference: same model via sklearn Pipeline.predict",
         lambda q, s: dp.value_models_[s].predict(basis[q, s])),
    ]
    print(f"Machine: {machine()}\n")
    print(f"{len(calls)} timed calls per row after {args.warmup} warm-up calls, "
          f"{len(used)} test queries, stages {stages}, chain {' → '.join(CHAIN)}, λ = {LAM:g}\n")
    head = "| measurement | p50 µs | p90 µs | p99 µs | p50 by stage " + \
           "/".join(map(str, stages)) + " µs | % of decide p50 |"
    print(head)
    print("|---|---:|---:|---:|---:|---:|")
    stage_of = np.array([s for _, s in calls])
    total = 0.0
    summary: dict[str, float] = {}
    all_ns = timings([fn for _, fn in rows], calls, args.warmup)
    for (name, _), ns in zip(rows, all_ns, strict=True):
        p50, p90, p99 = percentiles_us(ns)
        by_stage = "/".join(f"{np.median(ns[stage_of == s]) / 1e3:.0f}" for s in stages)
        if not name.startswith(" "):
            total = p50
            summary[name] = p50
        share = f"{100 * p50 / total:.0f}%"
        print(f"| {name} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {by_stage} | {share} |")
    t50 = summary["threshold: decide (total)"]
    d50 = summary["dp: decide, earlier_scores given"]
    n50 = summary["dp: decide, earlier_scores=None"]
    print(f"\nthreshold p50 {t50:.1f} µs vs target 100 µs: {'met' if t50 <= 100 else 'NOT met'}")
    print(f"dp p50 (earlier_scores given) {d50:.1f} µs vs target 500 µs: "
          f"{'met' if d50 <= 500 else 'NOT met'}; without earlier_scores {n50:.1f} µs: "
          f"{'met' if n50 <= 500 else 'NOT met'}")
    print(f"ratios (same run): dp-given / threshold = {d50 / t50:.1f}×, "
          f"dp-None / dp-given = {n50 / d50:.2f}×")


if __name__ == "__main__":
    main()
