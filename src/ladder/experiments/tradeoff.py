"""Seed 001's trade-off figures on each Zellinger benchmark: every policy family's
cost-quality frontier on test with the baselines (fixed, random, oracle), where the
cascades stop (stage distribution), the optimal thresholds against λ, and the family table
with 90% intervals. One shared evaluation per benchmark (`DataDir.evaluation`)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ladder.evaluate.experiment import Evaluation, lambda_grid, to_json
from ladder.experiments.base import (
    FAILS,
    HOLDS,
    UNSETTLED,
    BenchmarkExperiment,
    Finding,
    Section,
    relative,
)
from ladder.experiments.data import DataDir
from ladder.experiments.verdicts import ci, number, overall
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.report import write_report
from ladder.runlog.table import QueryTable

SEED_SPEEDUP = 6.2  # seed 001: "consistent 6.2× speedup across all λ values"
N_LAMBDAS = 20


def _family_rows(summary: dict) -> list[list]:
    """Per family: AIQ and cost@98% with intervals, share of resamples reaching 98%,
    cost@100%, gap closure and max quality (JSON-able)."""
    rows = []
    for family, s in summary.items():
        intervals = s.get("ci", {})
        rows.append([family, {"point": s["aiq"], **_ends(intervals.get("aiq"))},
                     {"point": s["cost_at_98"], **_ends(intervals.get("cost_at_98"))},
                     (intervals.get("cost_at_98") or {}).get("share_reached"),
                     s["cost_at_100"], s["gap_closure_98"], s["max_quality"]])
    return rows


def _ends(interval: dict | None) -> dict:
    return {"low": (interval or {}).get("low"), "high": (interval or {}).get("high")}


def thresholds_by_lambda(train: QueryTable, lambdas: np.ndarray) -> dict:
    """The threshold cascade on the whole ladder fitted at each λ: its per-stage thresholds
    (seed 001's Figure 1(d) axis), one predictor cache for all λ."""
    cache = PredictorCache(train)
    fitted = [ThresholdCascade(None, float(lam)).fit(train, cache) for lam in lambdas]
    return {"lambdas": [float(x) for x in lambdas], "models": list(train.models),
            "thresholds": [[float(t) for t in f.thresholds_[:-1]] for f in fitted]}


def _plot_thresholds(curves: dict, path: Path, title: str) -> None:
    plt.switch_backend("Agg")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    lambdas = np.array(curves["lambdas"])
    shown = lambdas > 0
    values = np.array(curves["thresholds"])
    for stage, model in enumerate(curves["models"][:-1]):
        ax.plot(lambdas[shown], values[shown, stage], marker="o", ms=3,
                label=f"stop after {model}")
    ax.set_xscale("log")
    ax.set(xlabel="λ (quality per $)", ylabel="threshold on predicted quality",
           title=f"{title}: optimal thresholds of the full-ladder threshold cascade")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def speedups(evaluation: Evaluation, test: QueryTable, family: str = "auto") -> list[dict]:
    """Per λ point of the family: cost of the test split's costliest model / its cost,
    and its quality as a share of that model's."""
    top = int(np.argmax(test.mean_cost()))
    c, q = test.mean_cost()[top], test.mean_quality()[top]
    return [{"lambda": p.lam, "speedup": c / p.cost if p.cost > 0 else None,
             "retained": p.quality / q} for p in evaluation.family_points(family)]


class Tradeoff(BenchmarkExperiment):
    name = "tradeoff"
    title = "Seed 001's trade-off: frontiers, stage distribution, thresholds against λ"

    def cost(self, unit: str) -> float:
        return 1.0

    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        train, test, how, evaluation = data.evaluation(unit)
        folder = out / unit
        write_report(evaluation, folder, title=f"zellinger-cascades {unit}: every family")
        (folder / "results.json").write_text(json.dumps(to_json(evaluation), indent=1))
        curves = thresholds_by_lambda(train, lambda_grid(train, N_LAMBDAS))
        _plot_thresholds(curves, folder / "thresholds.png", unit)
        best_train = max(train.models, key=lambda m: train.mean_quality()[train.index(m)])
        best_test = max(test.models, key=lambda m: test.mean_quality()[test.index(m)])
        return {
            "n_train": train.n, "n_test": test.n, "split": how,
            "best_train": [best_train, float(train.mean_quality()[train.index(best_train)])],
            "best_test": [best_test, float(test.mean_quality()[test.index(best_test)])],
            "families": _family_rows(evaluation.summary),
            "comparisons": [{"a": c["a"], "b": c["b"], "aiq": c["aiq"],
                             "cost_at_98": c["cost_at_98"]} for c in evaluation.comparisons],
            "speedups": speedups(evaluation, test), "thresholds": curves,
            "notes": evaluation.notes,
        }

    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        if not results:
            return Section("No Zellinger log in the data folder.")
        lines = [
            "Each benchmark: every family fitted on the log's `train` split, replayed on "
            "`test` (GSM8K has no test split in the log: a seeded 50/50 split), all nine "
            "models, 20 λ values + λ = 0, chains of up to 3 models plus the full ladder. "
            "`auto` chooses per λ among threshold, DP and routed cascades (plug-in weight α, "
            "the answer vote, the single model it predicts best) by held-out objective on 5 "
            "folds of train. Intervals: 90% percentile bootstrap over test queries (1,000 "
            "resamples, paired across families). A '—' upper end means the hull does not "
            "reach 98% in over 5% of resamples; 'reached' is the share that does. Full "
            "reports (hull vertices, shadow prices, predictors' AUROC) are linked per "
            "benchmark.", "",
        ]
        for bench, r in results.items():
            def link(name: str, folder: Path = out / bench) -> str:
                return relative(folder / name, page)

            (bt, qt), (be, qe) = r["best_train"], r["best_test"]
            lines += [f"### {bench} ({r['n_train']} train → {r['n_test']} test; {r['split']})",
                      "", f"Most accurate on train: {bt} ({qt:.3f}); on test: {be} ({qe:.3f}). "
                      f"[Full report]({link('report.md')}).", "",
                      "| family | AIQ [90% CI] | cost@98% [90% CI] | reached 98% | cost@100% "
                      "| gap closure@98% | max quality |", "|---|---|---|---|---|---|---|"]
            for family, a, c98, reached, c100, gap, top in r["families"]:
                lines.append(f"| {family} | {ci(a)} | {ci(c98)} | {number(reached)} | "
                             f"{number(c100)} | {number(gap)} | {number(top)} |")
            lines += ["", "| comparison | Δ AIQ [90% CI] | Δ cost@98% [90% CI] |",
                      "|---|---|---|"]
            lines += [f"| {c['a']} − {c['b']} | {ci(c['aiq'], '+.3f')} | "
                      f"{ci(c['cost_at_98'], '+.3f')} |" for c in r["comparisons"]]
            s = [x["speedup"] for x in r["speedups"] if x["speedup"]]
            lines += ["", f"auto's speedup over the costliest model across the 21 λ values: "
                      f"{min(s):.2f}× to {max(s):.2f}×.", "",
                      f"![{bench} frontier]({link('frontier.png')})",
                      f"![{bench} stage distribution]({link('stage_mix.png')})",
                      f"![{bench} thresholds against λ]({link('thresholds.png')})", "",
                      *[f"- {n}" for n in r["notes"]], ""]
        return Section("\n".join(lines), self._findings(results))

    def _findings(self, results: dict[str, dict]) -> list[Finding]:
        spans, consistent, dp = [], [], []
        for bench, r in results.items():
            s = [x["speedup"] for x in r["speedups"] if x["speedup"]]
            spans.append(f"{bench} {min(s):.2f}×–{max(s):.2f}×")
            consistent.append(min(s) >= SEED_SPEEDUP)
            diff = next(c["aiq"] for c in r["comparisons"] if (c["a"], c["b"]) == ("dp",
                                                                                  "threshold"))
            dp.append((bench, diff))

        def beats(d: dict) -> str:
            return HOLDS if d["low"] > 0 else FAILS if d["high"] < 0 else UNSETTLED

        return [
            Finding("all-lambda", "auto's speedup over the costliest model across λ: "
                    + "; ".join(spans), HOLDS if all(consistent) else FAILS),
            Finding("dp", "dp − threshold AIQ (paired 90% CI): " + "; ".join(
                f"{b} {ci(d, '+.3f')}" for b, d in dp), overall([beats(d) for _, d in dp])),
        ]
