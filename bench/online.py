"""Online learning with measured regret on the Zellinger logs (issue 9 item 1, theory.md §6).

Usage: PYTHONPATH=src python bench/online.py [--orderings 20] [--tune-orderings 3] [--jobs 2]
Writes docs/results/online/*.png and the 'online' section of docs/results.md.
"""

from __future__ import annotations

import argparse
import time

import matplotlib.pyplot as plt
import numpy as np

from _common import CHAIN, LAM, RESULTS, machine, require_data, write_section
from ladder.experiments.regret import (
    WARM_FROM,
    Learner,
    RegretRun,
    band,
    paired_interval,
    simulate,
    sqrt_log_ratio,
    summary,
    tune,
)
from ladder.runlog import QueryTable, load_runlog

BENCHMARKS = ("mmlu", "medmcqa", "triviaqa")
FIRST = 100  # warm vs cold, and online vs offline, after this many queries
OUT = RESULTS.parent / "results" / "online"


def figure(name: str, runs: dict[str, RegretRun]) -> str:
    """R(T) and R(T)/(√T log T), mean and 10–90% band across orderings, cold and warm."""
    plt.switch_backend("Agg")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, run in runs.items():
        t = np.arange(1, run.T + 1)
        panels = ((axes[0], run.regret, t), (axes[1], sqrt_log_ratio(run.regret), t[1:]))
        for ax, values, x in panels:
            mean, lo, hi = band(values)
            ax.plot(x, mean, label=label)
            ax.fill_between(x, lo, hi, alpha=0.25)
    axes[0].set(xlabel="T (queries)", ylabel="R(T)", title=f"{name}: cumulative regret")
    axes[1].set(xlabel="T (queries)", ylabel="R(T) / (√T log T)", title="normalised")
    axes[0].legend()
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"regret_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(RESULTS.parent))


def fmt(b: tuple, digits: int = 4) -> str:
    mean, lo, hi = (float(x) for x in b)
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orderings", type=int, default=20)
    parser.add_argument("--tune-orderings", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    start = time.time()
    log = load_runlog(require_data())
    splits = {}
    for name in set(BENCHMARKS) | set(WARM_FROM.values()):
        table = QueryTable.from_runlog(log, benchmark=name).select_models(CHAIN)
        splits[name] = (table.rows(table.split == "train"), table.rows(table.split == "test"))
    chain = tuple(CHAIN)
    params, warm_weight, search = tune({b: splits[b] for b in BENCHMARKS}, splits, chain, LAM,
                                       args.tune_orderings, args.jobs)
    lines = [
        "# Online learning with measured regret (issue 9 item 1)", "",
        f"Produced by `PYTHONPATH=src python bench/online.py --orderings {args.orderings} "
        f"--tune-orderings {args.tune_orderings} --jobs {args.jobs}` "
        f"({time.strftime('%Y-%m-%d')}; {machine()}).", "",
        f"Chain: {', '.join(CHAIN)} (the 5-model chain of `bench/_common.py`, fixed, not chosen "
        f"on data); λ = {LAM:g} per dollar. Each benchmark's *test* split is streamed in "
        f"{args.orderings} random orders; after each query only the qualities of the models "
        "that ran are revealed. π* = the threshold cascade on the same chain fitted in hindsight "
        "on the whole stream (cross-fitted scores, in-sample thresholds). R(T) = Σ_t [J_λ(π*, x_t) "
        "− J_λ(π_t, x_t)], exploration and all. Bands: 10–90% quantiles across orderings.", "",
        "Hyper-parameters chosen on the *train* splits only (streams of the mmlu, medmcqa "
        f"and triviaqa train splits, {args.tune_orderings} orderings each, best mean reward "
        "per query): "
        + "; ".join(search) + f". Chosen: c = {params['c']}, refit_growth = "
        f"{params['refit_growth']} (refit after max(20, growth × labels) new labels), warm "
        f"weight = {warm_weight} queries.", "",
        "| benchmark | T | J(π*) | R(T)/T | R(T)/T ÷ J(π*) | < 1%? | R/(√T log T) at T "
        "| max over t ≥ 10 | growth exponent (t ≥ T/2) | labels/query |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    comparisons, figures = [], []
    for name in BENCHMARKS:
        test = splits[name][1]
        prior = splits[WARM_FROM[name]][0]
        runs = {
            "cold": simulate(test, Learner(chain, LAM, tuple(params.items())), LAM,
                             args.orderings, frozen_at=FIRST, n_jobs=args.jobs),
            f"warm ({WARM_FROM[name]} train)": simulate(
                test, Learner(chain, LAM, tuple({**params, "warm_weight": warm_weight}.items()),
                              prior), LAM, args.orderings, frozen_at=FIRST, n_jobs=args.jobs),
        }
        for label, run in runs.items():
            s = summary(run)
            met = "yes" if s["relative"][0] < 0.01 else "no"
            lines.append(
                f"| {name} ({label}) | {s['T']} | {s['best_objective']:.4f} | "
                f"{fmt(s['regret_per_query'])} | {fmt(s['relative'])} | {met} | "
                f"{fmt(s['sqrt_log_ratio_end'], 3)} | {fmt(s['sqrt_log_ratio_max'], 3)} | "
                f"{fmt(s['exponent'], 2)} ({s['exponent_defined']}/{args.orderings} defined) | "
                f"{s['labels_per_query']:.2f} |")
        cold, warm = runs.values()
        first = [np.mean(w.reward[:FIRST]) - np.mean(c.reward[:FIRST])
                 for w, c in zip(warm.orderings, cold.orderings, strict=True)]
        online = [np.mean(o.frozen) - np.mean(o.offline) for o in cold.orderings]
        online_warm = [np.mean(o.frozen) - np.mean(o.offline) for o in warm.orderings]
        comparisons.append((name, paired_interval(first), np.mean(np.array(first) > 0),
                            paired_interval(online), paired_interval(online_warm)))
        figures.append(f"![{name}]({figure(name, runs)})")
    lines += ["", f"Warm − cold, mean J_λ per query over the first {FIRST} queries (paired by "
              "ordering: same order, same exploration seed; 95% t interval); and the learner "
              f"frozen after {FIRST} queries − an offline threshold cascade fitted on the first "
              f"⌊labels/{len(CHAIN)}⌋ queries of the same order with all {len(CHAIN)} labels (as "
              "many labels), both judged on the remaining queries.", "",
              "| benchmark | warm − cold (first 100) | orderings warm > cold "
              "| cold online − offline | warm online − offline |", "|---|---|---|---|---|"]
    for name, first, share, online, online_warm in comparisons:
        lines.append(f"| {name} | {fmt(first)} | {share:.2f} | {fmt(online)} | "
                     f"{fmt(online_warm)} |")
    lines += ["", *figures, "", f"Total time {time.time() - start:.0f} s."]
    write_section("online", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
