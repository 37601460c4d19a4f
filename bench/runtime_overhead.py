"""Runtime overhead per `decode` beyond the models' own time (target ≤ 1 ms).

Drives `Cascade` with the replay backend over Zellinger MMLU test (real logged outputs,
5-model chain, λ = 300, policies fitted on train) so every rung is a real decision.
Overhead = the decode's wall time minus the time inside the backends' calls: building
each rung's one-query table, features, predictor, rule, trace and bookkeeping. Measured
two ways: inside `adecode` (Result.overhead_s) and around the sync `decode` call, which
adds the hand-off to the Cascade's loop thread.
Usage: .venv/bin/python bench/runtime_overhead.py [--items N]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from _common import CHAIN, fitted_policies, machine, require_data
from ladder.backends.replay import ReplayBackend
from ladder.config import Price
from ladder.rung import Rung
from ladder.runlog import load_runlog
from ladder.runtime import Cascade
from ladder.tasks import Item

TARGET_MS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1531, help="test queries decoded")
    args = parser.parse_args()
    print(machine())
    folder = require_data()
    test, thr, dp = fitted_policies()
    prompts = load_runlog(folder).drop_duplicates("query_id").set_index("query_id")["prompt"]
    items = [Item(str(q), str(prompts[q])) for q in test.query_ids[: args.items]]
    print(f"\n{len(items)} MMLU test items, chain {' → '.join(CHAIN)}\n")
    print("| policy | mean rungs run | overhead in adecode p50 / p90 / p99 (ms) "
          "| overhead around sync decode p50 / p99 (ms) | model (replay) time p50 (ms) |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, policy in (("threshold", thr), ("dp", dp)):
        rungs = {m: Rung(m, ReplayBackend(folder, m, "zellinger"), Price()) for m in CHAIN}
        with Cascade(rungs, policy) as cascade:
            for item in items[:50]:  # warm-up: caches, compiled predictors, loop thread
                cascade.decode(item)
            inside, around, model, rungs_run = [], [], [], []
            gc.disable()
            try:
                for item in items:
                    start = time.perf_counter()
                    result = cascade.decode(item)
                    wall = time.perf_counter() - start
                    inside.append(result.overhead_s)
                    around.append(wall - (result.latency_s - result.overhead_s))
                    model.append(result.latency_s - result.overhead_s)
                    rungs_run.append(len(result.trace))
            finally:
                gc.enable()
        inside_ms, around_ms = np.array(inside) * 1e3, np.array(around) * 1e3
        p = np.percentile(inside_ms, [50, 90, 99])
        q = np.percentile(around_ms, [50, 99])
        print(f"| {name} | {np.mean(rungs_run):.2f} | {p[0]:.3f} / {p[1]:.3f} / {p[2]:.3f} "
              f"| {q[0]:.3f} / {q[1]:.3f} | {np.median(model) * 1e3:.3f} |")
        worst = max(worst, q[0])
    verdict = "met" if worst <= TARGET_MS else "NOT met"
    print(f"\ntarget: overhead ≤ {TARGET_MS} ms per decode (p50, sync, worst policy): "
          f"{worst:.3f} ms — {verdict}")


if __name__ == "__main__":
    main()
