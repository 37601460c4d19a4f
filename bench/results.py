"""Decision-quality results on the Zellinger logs (issue targets), written to docs/results.md.

Run from the repo root: .venv/bin/python bench/results.py
Fits on each benchmark's `train` split, reports on `test`, all nine models allowed.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "zellinger-cascades"
TARGETS = {"mmlu": 0.20, "medmcqa": 0.40, "triviaqa": 0.12}  # dp cost_at_98 targets
BASELINE = {"mmlu": (0.35, 0.63), "medmcqa": (0.79, None), "triviaqa": (0.20, None)}
COLUMNS = ("aiq", "cost_at_98", "cost_at_100", "cpt50", "cpt80", "apgr", "gap_closure_98",
           "max_quality")


READING = """\
Reading these numbers. Everything a cascade decides (thresholds, which models to chain, the DP's
regression target, the predictors' regularisation) is chosen on a train split of 285-300
queries, and chains are judged on held-out folds of it. On all three benchmarks the model that
is most accurate on train is not the one most accurate on test (the 'most accurate on train'
lines), so cascades fitted on train climb towards a different top model than the reference the
cost_at metrics use; on MMLU the train-best (qwen2.5-72b) is 0.03 below the test-best on test,
which caps the cascades' test quality below 98% of it. The `fixed` family is each model
evaluated directly on test and has no such handicap. Compare `dp` with `threshold`, and both
with `seed_heuristic` (the seeds' closed-form thresholds on the same predictors), in the
tables above."""


def _fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


def main() -> int:
    if not DATA.is_dir():
        print(f"needs the real logs at {DATA}", file=sys.stderr)
        return 1
    from ladder.evaluate.experiment import evaluate, to_json
    from ladder.evaluate.split import split_table
    from ladder.report import write_report
    from ladder.runlog import QueryTable, load_runlog

    log = load_runlog(DATA)
    lines = [
        "# Results: cascades fitted on real logged outputs",
        "",
        f"Produced by `.venv/bin/python bench/results.py` on {date.today()} "
        f"(Python {platform.python_version()}). Each benchmark: fit on the log's `train` split, "
        "report on `test`, all nine models allowed, default settings (logistic quality "
        "predictors, 20 λ values + λ=0, chains of up to 3 models plus the full ladder). The "
        "same numbers come from `ladder evaluate ../shared/data/zellinger-cascades --benchmark "
        "NAME --json OUT`; full reports with figures are in `docs/results/NAME/report.md`.",
        "",
        "cost@98% / cost@100%: mean cost as a fraction of the most accurate single model's cost "
        "to reach 98% / 100% of its **test** quality, on the family's upper concave hull of test "
        "points (policies fitted on train; λ never chosen on test for fitting). '—': never "
        "reached.",
        "",
    ]
    verdicts = []
    for bench, target in TARGETS.items():
        start = time.perf_counter()
        table = QueryTable.from_runlog(log, benchmark=bench)
        train, test, how = split_table(table)
        evaluation = evaluate(train, test, split=how)
        seconds = time.perf_counter() - start
        write_report(evaluation, ROOT / "docs" / "results" / bench,
                     title=f"ladder evaluate zellinger-cascades --benchmark {bench}")
        (ROOT / "docs" / "results" / bench / "results.json").write_text(
            json.dumps(to_json(evaluation), indent=1))
        s = evaluation.summary
        best = max(evaluation.models, key=lambda m: m["quality"])
        train_quality = dict(zip(train.models, train.mean_quality(), strict=True))
        train_best = max(train_quality, key=train_quality.get)
        lines += [
            f"## {bench} ({train.n} train / {test.n} test; most accurate single model on test: "
            f"{best['name']}, {best['quality']:.4f} at {best['cost']:.3g} $/query; "
            f"{seconds:.0f} s)",
            "",
            "| family | " + " | ".join(COLUMNS) + " |",
            "|---|" + "---|" * len(COLUMNS),
        ]
        lines += [f"| {f} | " + " | ".join(_fmt(s[f][c]) for c in COLUMNS) + " |" for f in s]
        lines.append("")
        dp, thr, seed = s["dp"], s["threshold"], s["seed_heuristic"]
        base98, base100 = BASELINE[bench]
        checks = [
            (f"dp cost_at_98 ≤ {target}", dp["cost_at_98"] is not None
             and dp["cost_at_98"] <= target, _fmt(dp["cost_at_98"])),
            ("dp cost_at_100 reached", dp["cost_at_100"] is not None, _fmt(dp["cost_at_100"])),
            ("dp AIQ ≥ threshold AIQ", dp["aiq"] >= thr["aiq"],
             f"{dp['aiq']:.4f} vs {thr['aiq']:.4f}"),
            ("dp and threshold AIQ > seed_heuristic AIQ",
             min(dp["aiq"], thr["aiq"]) > seed["aiq"], f"seed {seed['aiq']:.4f}"),
        ]
        lines += ["| target | met | measured |", "|---|---|---|"]
        lines += [f"| {name} | {'yes' if ok else 'no'} | {got} |" for name, ok, got in checks]
        lines += ["", f"Most accurate on train: {train_best} ({train_quality[train_best]:.4f}; "
                  f"{best['name']} has {train_quality[best['name']]:.4f} on train)."]
        lines += ["", f"Naive confidence-threshold baseline quoted in the issue: cost_at_98 ≈ "
                  f"{base98}, cost_at_100 {base100 if base100 else 'not reached'}.", ""]
        verdicts += [(bench, name, ok) for name, ok, _ in checks]
    met = sum(ok for *_, ok in verdicts)
    lines += ["## Summary", "", f"{met} of {len(verdicts)} targets met.", "", READING, ""]
    (ROOT / "docs" / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
