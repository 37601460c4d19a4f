"""Learning curves: how each family's test frontier grows with the number of labelled
training queries, with and without pooling across tasks (theory.md §9).

Zellinger & Thomson report their largest gain (+10.2% AIQ) with ≤ 30 labelled queries, from
pooled plug-in tuning against label-only tuning; seed 000 claims ε-optimal decisions from
O(1/ε²) samples. Both are statements about the low-data end of a learning curve, so one
unit per Zellinger benchmark fits every family on seeded subsamples of its train split
(every choice is made on the subsample, and the pool never holds a test row) and replays
it on the whole test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.evaluate.experiment import evaluate
from ladder.evaluate.split import pooled_training
from ladder.experiments.base import (
    FAILS,
    HOLDS,
    UNSETTLED,
    UNTESTABLE,
    Experiment,
    Finding,
    Section,
    relative,
)
from ladder.experiments.data import DataDir
from ladder.experiments.regret import paired_interval
from ladder.runlog.table import QueryTable

SIZES = (10, 30, 100, 300)  # training queries; capped at the train split's size
SEEDS = (0, 1, 2)  # subsamples per size below the whole split
FAMILIES = ("auto", "threshold", "router", "routed")
POOLED = ("auto", "threshold", "routed")  # the router reads prompts, not the predictors
LADDER = ("llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b")
BENCHMARKS = ("mmlu", "medmcqa", "triviaqa")  # gsm8k: 150 train / 150 test, random split
N_LAMBDAS, MAX_STAGES = 5, 2  # (20, 3 in the full evaluation): 60 fits must fit the budget
LEVEL = 0.90
ZT_GAIN = 0.102  # Zellinger & Thomson: pooled plug-in vs label-only AIQ, ≤ 30 queries
FEW = (10, 30)
RATE = -0.5  # ε ∝ n^(-1/2), i.e. O(1/ε²) samples
SECONDS = {"mmlu": 330.0, "medmcqa": 300.0, "triviaqa": 170.0}  # measured per unit


def subsample(train: QueryTable, size: int, seed: int) -> QueryTable:
    """`size` train queries (all of them when train is smaller), drawn without replacement
    by `seed`, in their original order."""
    rows = np.random.default_rng(seed).choice(train.n, min(size, train.n), replace=False)
    return train.rows(np.sort(rows))


def sizes(n_train: int) -> list[int]:
    """The curve's sizes for a train split of n_train queries."""
    return sorted({min(s, n_train) for s in SIZES})


def interval(values: list[float | None]) -> tuple[float, float, float] | None:
    """Mean and t interval over seeds of the defined values (NaN ends from one value)."""
    x = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return None
    if len(x) == 1:
        return float(x[0]), np.nan, np.nan
    return paired_interval(x, LEVEL)


def spread(values: list[float | None]) -> tuple[float, float, float] | None:
    """Mean, min and max of the defined values: cost@98 is defined on few seeds, where a
    t interval with one or two degrees of freedom runs below zero."""
    x = [v for v in values if v is not None]
    if len(x) < 2:
        return (x[0], np.nan, np.nan) if x else None
    return float(np.mean(x)), min(x), max(x)


def gains(result: dict, size: int) -> list[float]:
    """Per seed, auto pooled AIQ over threshold (label-only, alone) AIQ − 1: the same
    subsample for both, so the ratio is paired."""
    curves = result["curves"]
    pooled = curves["auto"]["pooled"][str(size)]["aiq"]
    alone = curves["threshold"]["alone"][str(size)]["aiq"]
    return [a / b - 1 for a, b in zip(pooled, alone, strict=True)]


def slopes(result: dict, pooling: str = "alone") -> list[float]:
    """Per seed, the log-log slope of auto's AIQ shortfall from the whole train split
    (AIQ(n_max) − AIQ(n)) against n over the smaller sizes; NaN where fewer than two of
    them fall short (a log needs a positive shortfall)."""
    curve = result["curves"]["auto"][pooling]
    n = np.array(result["sizes"][:-1], dtype=float)
    top = curve[str(result["sizes"][-1])]["aiq"][0]
    out = []
    for seed in range(len(result["seeds"])):
        gap = np.array([top - curve[str(int(s))]["aiq"][seed] for s in n])
        keep = gap > 0
        out.append(float(np.polyfit(np.log(n[keep]), np.log(gap[keep]), 1)[0])
                   if keep.sum() >= 2 else np.nan)
    return out


class Learning(Experiment):
    name = "learning"
    title = "Learning curves: 10 to 300 training queries, with and without pooling"

    def units(self, data: DataDir) -> list[str]:
        return [b for b in data.benchmarks("zellinger") if b in BENCHMARKS]

    def cost(self, unit: str) -> float:
        return SECONDS.get(unit, 150.0) / 60

    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        train, test, how = data.split("zellinger", unit, list(LADDER))
        whole = data.table("zellinger", models=list(LADDER))
        grid = sizes(train.n)
        curves: dict = {f: {"alone": {}, **({"pooled": {}} if f in POOLED else {})}
                        for f in FAMILIES}
        for size in grid:
            for seed in SEEDS if size < train.n else SEEDS[:1]:  # the whole split: one draw
                few = subsample(train, size, seed)
                for pooling, families in (("alone", FAMILIES), ("pooled", POOLED)):
                    pool = pooled_training(whole, few, unit) if pooling == "pooled" else None
                    summary = evaluate(few, test, split=how, families=families, pool=pool,
                                       n_resamples=0, n_lambdas=N_LAMBDAS,
                                       max_stages=MAX_STAGES, n_jobs=1).summary
                    for family in families:
                        cell = curves[family][pooling].setdefault(
                            str(size), {"aiq": [], "cost_at_98": []})
                        cell["aiq"].append(summary[family]["aiq"])
                        cell["cost_at_98"].append(summary[family]["cost_at_98"])
        result = {"n_train": train.n, "n_test": test.n, "split": how, "sizes": grid,
                  "seeds": list(SEEDS), "curves": curves}
        _figure(unit, result, out / f"learning-{unit}.png")
        return result

    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        if not results:
            return Section("No Zellinger benchmark in the data folder.")
        seeds = len(next(iter(results.values()))["seeds"])
        lines = [
            f"Per benchmark, {seeds} seeded subsamples (without replacement) of "
            f"{', '.join(map(str, SIZES))} queries of the train split — 300 is capped at "
            "the split's size ("
            + ", ".join(f"{u}: {r['n_train']}" for u, r in results.items())
            + "), where there is one draw (the whole split) — each family fitted on the "
            "subsample alone and replayed on the whole test split ("
            + ", ".join(f"{u}: {r['n_test']}" for u, r in results.items())
            + " queries). Every choice (thresholds, chain, λ, α, pooling strength) is made "
            "on the subsample. 'pooled': the quality predictors are also fitted on the other "
            "benchmarks' non-test queries, with partial pooling (theory.md §9); tuning still "
            "reads the subsample only. The router reads prompts, not the predictors, so "
            "pooling does not reach it. Ladder: the five Llama models "
            f"({', '.join(LADDER)}); {N_LAMBDAS} λ values + λ = 0 and chains of up to "
            f"{MAX_STAGES} models (the full evaluation uses 20 and 3: these keep all units "
            "within the command's time budget). No bootstrap: intervals are "
            f"{LEVEL:.0%} t intervals over the seeds (the seeds' spread of subsamples; the "
            "test split is fixed). cost@98: share of the most accurate model's cost at 98% "
            "of its quality: mean and range (not a t interval: few seeds reach it) over the "
            "seeds whose hull reaches it, with their share.", "",
        ]
        for unit, result in results.items():
            lines += [f"### {unit}", "", *_tables(result), "",
                      f"![{unit} learning curves]"
                      f"({relative(out / f'learning-{unit}.png', page)})", ""]
        few, samples = _few_labels(results), _samples(results)
        small = [n for n in FEW if all(n in r["sizes"] for r in results.values())]
        lines += [
            "### Against Zellinger & Thomson's +10.2% at ≤ 30 queries", "",
            "Gain = auto pooled AIQ ÷ threshold AIQ (label-only tuning, no pooling) − 1, "
            "per seed on the same subsample; mean [interval over seeds].", "",
            "| benchmark | " + " | ".join(f"{n} queries" for n in small) + " |",
            "|---|" + "---|" * len(small),
            *(f"| {u} | " + " | ".join(_mean(interval(gains(r, n)), "+.1%") for n in small)
              + " |" for u, r in results.items()), "",
            few.measured + ". Verdict: holds when the whole interval is at or above "
            "+10.2%, does not hold when it is below, otherwise not settled.", "",
            "### Sample complexity (seed 000)", "",
            "Proxy for ε: auto's AIQ shortfall (no pooling) from its AIQ on the whole train "
            "split; per seed, the slope of log shortfall against log n over the smaller "
            f"sizes. O(1/ε²) samples means a slope of {RATE} or steeper.", "",
            "| benchmark | slope | seeds with a slope |", "|---|---|---|",
            *(f"| {u} | {_mean(interval(slopes(r)), '.2f')} | "
              f"{int(np.isfinite(slopes(r)).sum())}/{len(r['seeds'])} |"
              for u, r in results.items()), "",
            samples.measured + f". Verdict: holds when the whole interval is at or below "
            f"{RATE}, does not hold when it is above, otherwise not settled.",
        ]
        return Section("\n".join(lines), [few, samples])


def _mean(ci: tuple[float, float, float] | None, spec: str) -> str:
    """'mean [low, high]', or '—' when nothing was measured."""
    if ci is None:
        return "—"
    mean, low, high = ci
    ends = f" [{low:{spec}}, {high:{spec}}]" if np.isfinite(low) else ""
    return f"{mean:{spec}}{ends}"


def _tables(result: dict) -> list[str]:
    """AIQ and cost@98 (share of seeds reaching 98%) by family × pooling × size."""
    head = "| family | pooling | " + " | ".join(f"n = {n}" for n in result["sizes"]) + " |"
    rule = "|---|---|" + "---|" * len(result["sizes"])
    aiq, cost = [head, rule], [head, rule]
    for family, by_pooling in result["curves"].items():
        for pooling, curve in by_pooling.items():
            cells = [curve[str(n)] for n in result["sizes"]]
            aiq.append(f"| {family} | {pooling} | "
                       + " | ".join(_mean(interval(c["aiq"]), ".3f") for c in cells) + " |")
            cost.append(f"| {family} | {pooling} | " + " | ".join(
                f"{_mean(spread(c['cost_at_98']), '.2f')} "
                f"({sum(v is not None for v in c['cost_at_98'])}/{len(c['cost_at_98'])})"
                for c in cells) + " |")
    return ["AIQ on test, mean [interval over seeds]:", "", *aiq, "",
            "cost@98, mean [min, max] over the seeds reaching 98% (reached/seeds):", "", *cost]


def _few_labels(results: dict[str, dict]) -> Finding:
    """The gain at ≤ 30 queries: per (benchmark, seed), the mean gain over FEW; a t interval
    over those pairs (the benchmarks' differences count as spread). Holds when the whole
    interval is at or above +10.2%, fails when it is below."""
    pairs = [float(np.mean(g)) for r in results.values()
             for g in zip(*(gains(r, n) for n in FEW if n in r["sizes"]), strict=True)]
    ci = interval(pairs)
    if ci is None or not np.isfinite(ci[1]):
        return Finding("few-labels", "fewer than two subsamples of ≤ 30 queries",
                       UNTESTABLE)
    mean, low, high = ci
    verdict = HOLDS if low >= ZT_GAIN else FAILS if high < ZT_GAIN else UNSETTLED
    settled = "" if verdict != UNSETTLED else "; not settled: the interval contains +10.2%"
    return Finding("few-labels",
                   f"auto pooled vs threshold alone at {' and '.join(map(str, FEW))} queries: "
                   f"{mean:+.1%} AIQ [{low:+.1%}, {high:+.1%}] ({LEVEL:.0%} t over "
                   f"{len(pairs)} benchmark × seed draws, {', '.join(results)}){settled}",
                   verdict)


def _samples(results: dict[str, dict]) -> Finding:
    """The shortfall's log-log slope over every (benchmark, seed) with one: holds when the
    interval is at or below −1/2 (ε falls at least as fast as n^(-1/2)), fails above."""
    values = [s for r in results.values() for s in slopes(r) if np.isfinite(s)]
    ci = interval(values)
    if ci is None or not np.isfinite(ci[1]):
        return Finding("samples", "fewer than two seeds give auto's AIQ shortfall a slope",
                       UNTESTABLE)
    mean, low, high = ci
    verdict = HOLDS if high <= RATE else FAILS if low > RATE else UNSETTLED
    settled = "" if verdict != UNSETTLED else f"; not settled: the interval contains {RATE}"
    return Finding("samples",
                   f"slope of auto's AIQ shortfall (our proxy for ε) against n: {mean:.2f} "
                   f"[{low:.2f}, {high:.2f}] ({LEVEL:.0%} t over {len(values)} benchmark × "
                   f"seed draws; −0.5 is n^(-1/2)){settled}", verdict)


def _figure(unit: str, result: dict, path: Path) -> None:
    """AIQ and cost@98 against training queries (log x), one line per family × pooling;
    bands: AIQ's t interval over seeds, cost@98's range over the seeds reaching 98%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    n = np.array(result["sizes"], dtype=float)
    for i, (family, by_pooling) in enumerate(result["curves"].items()):
        for pooling, curve in by_pooling.items():
            style = {"color": f"C{i}", "ls": "-" if pooling == "pooled" else "--",
                     "marker": "o" if pooling == "pooled" else "s"}
            for ax, key, band in zip(axes, ("aiq", "cost_at_98"), (interval, spread),
                                     strict=True):
                cis = [band(curve[str(int(s))][key]) for s in n]
                mean, low, high = (np.array([np.nan if c is None else c[j] for c in cis])
                                   for j in range(3))
                ax.plot(n, mean, label=f"{family} {pooling}", **style)
                ax.fill_between(n, low, high, color=style["color"], alpha=0.08)
    for ax, label in zip(axes, ("AIQ on test", "cost@98 (share of the best model's cost)"),
                         strict=True):
        ax.set(xscale="log", xlabel="training queries", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{unit}: {len(result['seeds'])} seeds; AIQ {LEVEL:.0%} t bands, cost@98 "
                 "min–max over the seeds reaching 98%")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
