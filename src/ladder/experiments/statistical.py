"""Seed 001's statistics table (§8.1) on each Zellinger benchmark, and its claims judged
(theory.md §7): `auto` at an operating point chosen on train against every single model and
a cost-matched Random mix, paired by test query (t-test, Wilcoxon, d_z, Holm, 95% bootstrap
intervals), as Markdown and LaTeX."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.evaluate.intervals import Resamples, paired_mean_interval
from ladder.experiments.base import FAILS, HOLDS, BenchmarkExperiment, Finding, Section, relative
from ladder.experiments.data import DataDir
from ladder.experiments.verdicts import at_least, ci, overall
from ladder.statistics import RESAMPLES, Comparison, seed001_table, to_latex, to_markdown

FRACTION = 0.95  # seed 001: "> 95% quality preservation"
SEED_SPEEDUP, SEED_REDUCTION, SEED_AVERAGE, SEED_FIRST = 6.2, 0.842, 0.54, 0.662


def _improves(row: Comparison) -> bool:
    """Seed 001's 'significant improvement with a large effect' for one row: cheaper, or
    more accurate, with both Holm-adjusted p < 0.001 and d_z > 0.8 in that direction."""
    a = row.adjusted
    cheaper = max(a["cost_t"], a["cost_w"]) < 0.001 and (row.cost_dz or 0) > 0.8
    better = max(a["quality_t"], a["quality_w"]) < 0.001 and (row.quality_dz or 0) > 0.8
    return cheaper or better


class Statistical(BenchmarkExperiment):
    name = "statistical"
    title = "Seed 001's statistics table, measured"

    def cost(self, unit: str) -> float:
        return 0.5

    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        train, test, how, evaluation = data.evaluation(unit)
        table, chosen = seed001_table(evaluation, train, test, fraction=FRACTION)
        (out / f"{unit}.tex").write_text(to_latex(table))
        costliest = test.models[int(np.argmax(train.mean_cost()))]
        top = table.row(f"Fixed {costliest}")
        ours = evaluation.outcomes[evaluation.points.index(chosen)]
        retained = paired_mean_interval(Resamples.draw(test.n, RESAMPLES, 0), ours.quality,
                                        test.quality[:, test.index(costliest)], ratio=True,
                                        level=table.level)
        return {
            "n_train": train.n, "n_test": test.n, "split": how, "markdown": to_markdown(table),
            "notes": table.notes, "level": table.level, "rows": len(table.comparisons),
            "improves": sum(map(_improves, table.comparisons)), "costliest": costliest,
            "speedup": top.speedup, "retained": retained, "first": table.first_stop,
            "chain": list(chosen.chain), "kind": (chosen.choice or {}).get("kind", "auto"),
            "cost": chosen.cost, "quality": chosen.quality, "latex": f"{unit}.tex",
        }

    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        if not results:
            return Section("No Zellinger log in the data folder.")
        first = next(iter(results.values()))
        lines = [
            "Per benchmark of the Zellinger log: every family fitted on `train`, replayed on "
            "`test`, all nine models (the evaluation the tradeoff section reports). The "
            "operating point is chosen on train only: `auto` at the λ whose cross-fitted "
            f"held-out train quality is the cheapest to reach {FRACTION:.0%} of the best "
            "single model's train quality. Baselines: every single model (Fixed-each) and a "
            "Random mix of the cheapest and the best-on-train model, cost-matched on train "
            "to the chosen point. Tests are paired by test query; p-values are "
            f"Holm-adjusted over all {4 * first['rows']} tests of a table ({first['rows']} "
            "rows × cost/quality × t/Wilcoxon); intervals are "
            f"{first['level']:.0%} percentile bootstrap over test queries ({RESAMPLES:,} "
            "resamples, seed 0, shared by every row). Speedup = base cost / our cost; "
            "Δ quality = our accuracy − base accuracy. The t-test asks whether the mean "
            "per-query difference is 0, Wilcoxon whether the differences are centred on 0 "
            "(zero differences dropped). Holm's step-down makes adjusted p-values "
            "non-decreasing in the raw ones, so several print alike. A row 'improves' when "
            "it is cheaper or more accurate with both Holm-adjusted p < 0.001 and "
            "d_z > 0.8 in that direction.", "",
        ]
        for bench, r in results.items():
            lines += [f"### {bench} ({r['n_train']} train → {r['n_test']} test; {r['split']})",
                      "", f"Operating point: {r['notes'][0]}. Its chain: "
                      f"{' → '.join(r['chain'])} ({r['kind']}); test cost {r['cost']:.3e} "
                      f"$/query, accuracy {r['quality']:.4f}. Answered by the first model it "
                      f"ran: {ci(r['first'])}. LaTeX: "
                      f"[{r['latex']}]({relative(out / r['latex'], page)}).", "",
                      r["markdown"], "", *[f"- {note}" for note in r["notes"][1:]], ""]
        return Section("\n".join(lines), self._findings(results))

    def _findings(self, results: dict[str, dict]) -> list[Finding]:
        def each(fmt) -> str:
            return "; ".join(f"{b}: {fmt(r)}" for b, r in results.items())

        speed = [at_least(r["speedup"], SEED_SPEEDUP) for r in results.values()]
        kept = [at_least(r["retained"], FRACTION) for r in results.values()]
        need = 1 / (1 - SEED_REDUCTION)  # a reduction of 84.2% is a speedup of 6.33×
        reduced = [at_least(r["speedup"], need) for r in results.values()]
        saved = [1 - 1 / r["speedup"]["point"] for r in results.values()]
        significant = all(r["improves"] == r["rows"] for r in results.values())
        inside = [r["first"]["low"] <= SEED_FIRST <= r["first"]["high"]
                  for r in results.values()]

        def saving(r: dict) -> str:
            s = r["speedup"]
            return (f"{1 - 1 / s['point']:.1%} [{1 - 1 / s['low']:.1%}, "
                    f"{1 - 1 / s['high']:.1%}]")

        return [
            Finding("speedup", each(lambda r: f"{ci(r['speedup'], '.2f', '×')} vs "
                                              f"{r['costliest']}"), overall(speed)),
            Finding("quality", "accuracy ratio to the costliest model, " + each(
                lambda r: ci(r["retained"])), overall(kept)),
            Finding("cost-84", "cost saved vs the costliest, " + each(saving),
                    overall(reduced)),
            Finding("average-54", f"mean saving {np.mean(saved):.1%} over {len(saved)} "
                    "benchmarks (" + each(saving) + ")",
                    HOLDS if np.mean(saved) >= SEED_AVERAGE else FAILS),
            Finding("significance", each(lambda r: f"{r['improves']} of {r['rows']} rows "
                                                   "improve"), HOLDS if significant else FAILS),
            Finding("first-stage", "share answered by the first model, " + each(
                lambda r: ci(r["first"])) + " (a description of their run, not a benefit)",
                HOLDS if all(inside) else FAILS),
        ]
