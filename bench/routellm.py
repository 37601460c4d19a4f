"""Our routers beside RouteLLM's published figures, on RouteLLM's own GPT-4 / Mixtral data.

    PYTHONPATH=src python bench/routellm.py [--data ../shared/data/routellm-gpt4-mixtral]

Per benchmark (MMLU, GSM8K; the prompts RouteLLM marks as contaminated are dropped by the
converter): a seeded 50/50 train/test split of the queries; every router variant is fitted
and chosen on train only; the budget-mode router's thresholds are set on train's
out-of-fold win scores for strong-call shares 0, 0.05, …, 1; all metrics are read on test.
Cost = share of GPT-4 calls (the converter charges 1 per GPT-4 call, 0 per Mixtral call).

Reported with 90% bootstrap intervals over test queries: CPT(50%), CPT(80%), APGR and the
saving at 95% of GPT-4's test quality, 1 − (GPT-4 share needed)/1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ladder.evaluate.frontier import Hull, apgr, cpt, upper_hull
from ladder.evaluate.intervals import Resamples
from ladder.evaluate.split import split_table
from ladder.policies.router import Router, RouterCache
from ladder.runlog import QueryTable, load_runlog
from ladder.runlog.converters.routellm import STRONG, WEAK

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm-gpt4-mixtral"
SHARES = np.linspace(0.0, 1.0, 21)
PUBLISHED = {"mmlu": 0.45, "gsm8k": 0.35}  # RouteLLM: saving at 95% of GPT-4 quality
METRICS = ("cpt50", "cpt80", "apgr", "saving_95")


def metrics(hull: Hull, q_weak: float, q_strong: float) -> dict[str, float]:
    """RouteLLM's metrics on a (GPT-4 share, quality) hull; NaN where never reached."""
    def share(p: float) -> float:
        value = cpt(hull, q_weak, q_strong, 1.0, p)
        return np.nan if value is None else value

    reached = hull.cost_at(0.95 * q_strong)
    return {"cpt50": share(0.5), "cpt80": share(0.8), "apgr": apgr(hull, 0.0, 1.0, q_weak,
                                                                   q_strong),
            "saving_95": np.nan if reached is None else 1.0 - reached}


def with_intervals(cost: np.ndarray, quality: np.ndarray, models: np.ndarray,
                   b: int, seed: int) -> dict[str, dict]:
    """Point metrics and 90% percentile intervals over test-query resamples; cost/quality
    are (n, P) per policy, models (n, 2) the weak and strong quality."""
    def at(c: np.ndarray, q: np.ndarray, m: np.ndarray) -> dict[str, float]:
        return metrics(upper_hull(c, q), m[0], m[1])

    point = at(cost.mean(axis=0), quality.mean(axis=0), models.mean(axis=0))
    rs = Resamples.draw(len(cost), b, seed)
    mc, mq, mm = rs.means(cost), rs.means(quality), rs.means(models)
    reps = [at(mc[i], mq[i], mm[i]) for i in range(b)]
    out = {}
    for name in METRICS:
        values = np.array([r[name] for r in reps])
        values = values[np.isfinite(values)]
        low, high = (np.quantile(values, [0.05, 0.95], method="inverted_cdf")
                     if len(values) else (np.nan, np.nan))
        out[name] = {"point": point[name], "low": float(low), "high": float(high),
                     "reached": len(values) / b}
    return out


def run(data: Path, benchmark: str, seed: int, b: int) -> dict:
    table = QueryTable.from_runlog(load_runlog(data, "routellm"), models=[WEAK, STRONG],
                                   benchmark=benchmark)
    train, test, how = split_table(table, 0.5, seed)
    start = time.perf_counter()
    cache = RouterCache(train)
    routers = [Router(budget=float(s)).fit(train, cache) for s in SHARES]
    outcomes = [r.replay(test) for r in routers]
    fitted = time.perf_counter() - start
    cost = np.column_stack([o.cost for o in outcomes])
    quality = np.column_stack([o.quality for o in outcomes])
    both = test.quality  # the two single models: RouteLLM's random-router line joins them
    return {
        "benchmark": benchmark, "split": how, "n_train": train.n, "n_test": test.n,
        "weak_quality": float(both[:, 0].mean()), "strong_quality": float(both[:, 1].mean()),
        "router": with_intervals(cost, quality, both, b, seed),
        "random": with_intervals(test.cost, both, both, b, seed),
        "variants": sorted({r.variant_ for r in routers}), "fit_seconds": round(fitted, 1),
        "published_saving_95": PUBLISHED[benchmark],
    }


def cell(m: dict) -> str:
    if not np.isfinite(m["point"]):
        return "not reached"
    return f"{m['point']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def table(results: list[dict]) -> str:
    lines = ["| benchmark | policy | CPT(50%) | CPT(80%) | APGR | saving at 95% of GPT-4 | "
             "RouteLLM published saving |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for name in ("router", "random"):
            published = f"~{r['published_saving_95']:.0%}" if name == "router" else ""
            lines.append(f"| {r['benchmark']} (n test {r['n_test']}) | {name} | "
                         + " | ".join(cell(r[name][m]) for m in METRICS) + f" | {published} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"RouteLLM data not found at {args.data}; pass --data")
    results = [run(args.data, b, args.seed, args.resamples) for b in ("mmlu", "gsm8k")]
    print(table(results))
    for r in results:
        print(f"{r['benchmark']}: weak {r['weak_quality']:.4f}, strong {r['strong_quality']:.4f}"
              f", variants chosen {', '.join(r['variants'])}, fit {r['fit_seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
