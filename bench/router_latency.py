"""Router cost per query: prompt features + decision, one live `Router.decide` call at a time.

    PYTHONPATH=src python bench/router_latency.py [--benchmark mmlu] [--queries 500]

Fits each router variant on the Zellinger log's training split of one benchmark (all nine
models), then times `decide(prompt)` on its test prompts, one by one, BLAS on one thread (a
2-core machine). Targets: ≤ 200 µs with text features, ≤ 5 ms with embeddings.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ladder.evaluate.split import split_table
from ladder.policies.router import Router, RouterCache, default_variants
from ladder.runlog import QueryTable, load_runlog

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zellinger-cascades"
TARGET_US = {"text": 200.0, "embedding": 5000.0}


def time_decisions(router: Router, prompts: list[str], repeats: int = 3) -> float:
    """Median over `repeats` passes of the mean µs per decision (first call warms up)."""
    router.decide(prompts[0])
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for prompt in prompts:
            router.decide(prompt)
        passes.append((time.perf_counter() - start) / len(prompts) * 1e6)
    return float(np.median(passes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--benchmark", default="mmlu")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    table = QueryTable.from_runlog(load_runlog(args.data, "zellinger"), benchmark=args.benchmark)
    train, test, _ = split_table(table)
    prompts = list(test.prompts[:args.queries])
    cache = RouterCache(train, default_variants())
    lam = 1.0 / float(np.median(train.mean_cost()))  # a λ where the choice is not trivial
    chars = np.mean([len(p) for p in prompts])
    print(f"{args.benchmark}: {len(prompts)} test prompts, mean {chars:.0f} chars, "
          f"{train.k} models")
    print("| variant | µs per query (features + decision) | target | met |")
    print("|---|---|---|---|")
    with threadpool_limits(1, "blas"):
        for variant in cache.variants:
            router = Router(lam, variants=[variant]).fit(train, cache)
            us = time_decisions(router, prompts)
            target = TARGET_US[variant.split("-", 1)[1]]
            print(f"| {variant} | {us:.0f} | ≤ {target:.0f} | {'yes' if us <= target else 'no'} |")


if __name__ == "__main__":
    main()
