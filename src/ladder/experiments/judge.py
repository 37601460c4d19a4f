"""How good is a policy fitted on a judge's labels? On the Zellinger benchmarks with their
labels hidden: the label-free reference judge (`judge_labels`), its label error, the fit
on its labels (and on a judge that saw 5% or 20% of the train queries) against the fit on
the true labels, paired by test query; then the quality-target mode on judge labels over
train resamples, without and with the prediction-powered correction for a person's labels
on a few queries (`ladder.policies.ppi`). Plus the embedded judge where it can run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from ladder.evaluate.experiment import Evaluation, evaluate
from ladder.evaluate.intervals import frontier_intervals
from ladder.experiments.base import FAILS, HOLDS, UNSETTLED, Experiment, Finding, Section
from ladder.experiments.data import DataDir
from ladder.experiments.judge_embedded import embedded_available, render_embedded, run_embedded
from ladder.experiments.judge_labels import (
    ALONE,
    DELTA,
    HUMAN_SHARE,
    HUMAN_SHARES,
    N_RESAMPLES,
    N_SUBSAMPLES,
    SUBSAMPLE,
    TARGET,
    TARGET_LAMBDAS,
    TARGET_STAGES,
    judged_split,
    label_errors,
    long_answers,
    reference_labels,
    reference_model,
    target_runs,
)
from ladder.experiments.regret import paired_interval
from ladder.experiments.verdicts import ci, number, overall

BENCHMARKS = ("mmlu", "medmcqa", "triviaqa")
FAMILIES = ("threshold", "auto")
JUDGE_SHARES = {"reference": 1.0, "20%": 0.2, "5%": 0.05}  # of the train queries judged
AIQ_TOLERANCE, COST_TOLERANCE = 0.005, 0.05  # the targets: |Δ| within these
MET = 9  # of N_SUBSAMPLES resamples: the quality-target mode's target
TARGET_UNIT = "/target"
EMBEDDED = "embedded"


def _per_query(evaluation: Evaluation, family: str) -> tuple[np.ndarray, np.ndarray]:
    """A family's per-query test cost and quality, one column per λ."""
    chosen = [o for p, o in zip(evaluation.points, evaluation.outcomes, strict=True)
              if p.family == family]
    return (np.column_stack([o.cost for o in chosen]),
            np.column_stack([o.quality for o in chosen]))


def _no_worse(interval: dict, tolerance: float, higher_is_better: bool) -> str:
    """'Δ loses at most `tolerance`' from a paired interval (a better fit passes): holds
    when the whole interval is on the good side of the tolerance, fails when it is all
    beyond it."""
    low, high = interval.get("low"), interval.get("high")
    if not higher_is_better:
        low, high = (None if high is None else -high), (None if low is None else -low)
    if low is not None and low >= -tolerance:
        return HOLDS
    return FAILS if high is not None and high < -tolerance else UNSETTLED


def _rate(k: int, n: int) -> dict:
    """k of n with its 90% Clopper–Pearson interval."""
    low, high = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
    return {"point": k / n, "low": float(low), "high": float(high)}


def _t(values: list[float]) -> dict:
    """Mean and 90% t interval over the train resamples."""
    mean, low, high = paired_interval(np.asarray(values, dtype=float), 0.9)
    return {"point": mean, "low": low, "high": high}


class Judge(Experiment):
    name = "judge"
    title = "Judge labels: fitting and promising without the true labels"

    def units(self, data: DataDir) -> list[str]:
        """The Zellinger benchmarks' fits and target runs, and with them (never alone: a
        data folder without the Zellinger log runs nothing here) the embedded judge."""
        here = [b for b in data.benchmarks("zellinger") if b in BENCHMARKS]
        if not here:
            return []
        return [*here, *(b + TARGET_UNIT for b in here),
                *([EMBEDDED] if embedded_available() else [])]

    def cost(self, unit: str) -> float:
        return 3.0 if unit.endswith(TARGET_UNIT) else 2.0

    def shared(self, unit: str) -> list[str]:
        return [unit] if unit in BENCHMARKS else []

    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        if unit == EMBEDDED:
            return run_embedded(out)
        bench = unit.removesuffix(TARGET_UNIT)
        log = data.log("zellinger")
        df = log[log["benchmark"] == bench].reset_index(drop=True)
        if unit.endswith(TARGET_UNIT):
            train, test, how = data.split("zellinger", bench)
            judged = judged_split(df, reference_labels(df, reference_model(train)), train, test)
            return {"n_train": train.n, "n_test": test.n, "split": how,
                    "runs": target_runs(judged, train, test)}
        train, test, how, evaluation = data.evaluation(bench)
        reference = reference_model(train)
        labels = reference_labels(df, reference)
        series = {f"true {f}": _per_query(evaluation, f) for f in FAMILIES}
        pairs = []
        for name, share in JUDGE_SHARES.items():
            judged = judged_split(df, labels, train, test, share)
            if share == 1.0:
                errors = label_errors(judged, train)
            fitted = evaluate(judged, test, split=how, families=FAMILIES, n_resamples=0,
                              n_jobs=1)
            for family in FAMILIES:
                series[f"{name} {family}"] = _per_query(fitted, family)
                pairs.append((f"{name} {family}", f"true {family}"))
        intervals = frontier_intervals(series, test.cost, test.quality, comparisons=pairs,
                                       b=N_RESAMPLES)
        return {"n_train": train.n, "n_test": test.n, "split": how, "reference": reference,
                "long_answers": long_answers(df[df["query_id"].isin(set(train.query_ids))]),
                "errors": errors, "families": intervals["families"],
                "comparisons": intervals["comparisons"]}

    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        fits = {u: r for u, r in results.items() if u in BENCHMARKS}
        targets = {u.removesuffix(TARGET_UNIT): r for u, r in results.items()
                   if u.endswith(TARGET_UNIT)}
        if not fits and not targets and EMBEDDED not in results:
            return Section("No Zellinger log in the data folder.")
        lines: list[str] = []
        findings: list[Finding] = []
        if fits:
            lines += _render_fits(fits)
            findings.append(_fit_finding(fits))
        if targets:
            lines += _render_targets(targets)
            findings += _target_findings(targets)
        if EMBEDDED in results:
            lines += ["### The embedded judge", "",
                      render_embedded(results[EMBEDDED], out, page), ""]
        return Section("\n".join(lines), findings)


def _delta(r: dict, name: str, family: str, metric: str) -> dict:
    return next(c[metric] for c in r["comparisons"]
                if (c["a"], c["b"]) == (f"{name} {family}", f"true {family}"))


def _render_fits(results: dict[str, dict]) -> list[str]:
    first = next(iter(results.values()))
    lines = [
        "Labels hidden: the reference is the top of the ladder chosen without labels (the "
        "dearest model by mean train cost), and every train cell is labelled by agreement "
        "of its answer with the reference's (letters, numbers, short text after "
        "normalisation; the reference's own cells 1.0; where agreement cannot tell, the cell "
        "is unlabelled and the fit's plug-in targets carry it, theory.md §9). Label error: "
        "share of train cells whose judge label differs from the true one, 90% interval "
        f"from {N_RESAMPLES:,} resamples of train queries (a query's cells move together).",
        "", "| benchmark | reference | label error | judge 1, truth 0 | judge 0, truth 1 | "
        "unlabelled cells | answers > 6 words |", "|---|---|---|---|---|---|---|",
    ]
    for bench, r in results.items():
        e = r["errors"]
        lines.append(f"| {bench} | {r['reference']} | {ci(e['error'])} | "
                     f"{ci(e['false_positive'])} | {ci(e['false_negative'])} | "
                     f"{ci(e['unlabelled'])} | {r['long_answers']:.1%} |")
    models = list(first["errors"]["models"])
    lines += ["", "Per model: label error [90% CI] (mean judge label / mean true label).", "",
              "| model | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for model in models:
        cells = []
        for r in results.values():
            m = r["errors"]["models"].get(model)
            cells.append("—" if m is None else
                         f"{ci(m['error'])} ({m['judged']:.3f} / {m['true']:.3f})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "", "Each family fitted on the judge-labelled train split (all train queries judged; "
        "or a seeded 20% or 5% of them, the rest unlabelled), exactly as the true-label fit "
        "of the tradeoff section (20 λ, chains of up to 3), and replayed on test with the "
        "true labels. Δ = judge-labelled − true-labelled, paired over the same "
        f"{N_RESAMPLES:,} resamples of test queries (90%); a cost@98% difference is over "
        "the resamples where both reach 98% ('both'). Targets, read as non-inferiority "
        f"(a better judge-labelled fit passes): Δ AIQ ≥ −{AIQ_TOLERANCE} and Δ cost@98% ≤ "
        f"+{COST_TOLERANCE}, the whole interval on that side; the verdict reads `auto`.",
        "", "| benchmark | family | labels | AIQ [90% CI] | Δ AIQ | cost@98% | Δ cost@98% | "
        "both |", "|---|---|---|---|---|---|---|---|",
    ]
    for bench, r in results.items():
        for family in FAMILIES:
            true = r["families"][f"true {family}"]
            lines.append(f"| {bench} | {family} | true | {ci(true['aiq'])} | | "
                         f"{ci(true['cost_at_98'])} | | |")
            for name in JUDGE_SHARES:
                s = r["families"][f"{name} {family}"]
                cost = _delta(r, name, family, "cost_at_98")
                lines.append(f"| {bench} | {family} | {name} | {ci(s['aiq'])} | "
                             f"{ci(_delta(r, name, family, 'aiq'), '+.3f')} | "
                             f"{ci(s['cost_at_98'])} | {ci(cost, '+.3f')} | "
                             f"{number(cost['share_both'], '.0%')} |")
    lines += ["", _fit_finding(results).measured + ".", ""]
    return lines


def _fit_finding(results: dict[str, dict]) -> Finding:
    """The reference-labelled auto fit against the true-label one, per benchmark."""
    parts, verdicts = [], []
    for bench, r in results.items():
        aiq = _delta(r, "reference", "auto", "aiq")
        cost = _delta(r, "reference", "auto", "cost_at_98")
        verdicts.append(_no_worse(aiq, AIQ_TOLERANCE, True))
        text = f"{bench}: Δ AIQ {ci(aiq, '+.3f')}"
        if cost["share_both"] < 0.5:
            text += f", cost@98% not compared (both fits reach 98% in {cost['share_both']:.0%}"\
                    " of resamples)"
        else:
            verdicts.append(_no_worse(cost, COST_TOLERANCE, False))
            text += f", Δ cost@98% {ci(cost, '+.3f')}"
        parts.append(text)
    return Finding("judge-fit", "auto fitted on reference-judge labels − on true labels: "
                   + "; ".join(parts), overall(verdicts))


def _summary(runs: list[dict], name: str) -> dict:
    """A labelling's target-mode results over the resamples."""
    rows = [run[name] for run in runs]
    met = sum(r["met"] for r in rows)
    return {"met": met, "rate": _rate(met, len(rows)),
            "margin": [r["margin"] for r in rows],
            "cost": _t([r["cost_share"] for r in rows]),
            "fallback": sum(r["fallback"] for r in rows),
            "human": int(np.median([r["human_labels"] for r in rows]))}


LABELLINGS = {"judge": "judge labels as the truth",
              **{f"{x:.0%}": f"corrected, {x:.0%} human" for x in HUMAN_SHARES},
              ALONE: f"PPI alone, {HUMAN_SHARE:.0%} human"}
SHIPPED = f"{HUMAN_SHARE:.0%}"  # what `ladder fit` does with the headline share


def _render_targets(results: dict[str, dict]) -> list[str]:
    lines = [
        f"Quality-target mode (`ladder fit --target-quality {TARGET}`, δ = {DELTA}) on judge "
        f"labels: {N_SUBSAMPLES} seeded {SUBSAMPLE:.0%} subsamples of the train split, "
        f"judge-labelled as above; `auto` over {TARGET_LAMBDAS} λ values with chains of up "
        f"to {TARGET_STAGES} models (20 and 3 in `ladder fit`: 30 sweeps must fit the "
        "budget), plus every single model, certified by Learn-then-Test on their "
        "cross-fitted held-out outcomes. 'judge labels as the truth': the tests read them "
        "so. 'corrected, s human': the same candidates, a person's labels on a seeded share "
        "s of the subsample's queries (they test, they fit nothing), each point passing "
        "both its test on the judge's labels and the prediction-powered one (PPI++, "
        "asymptotic; the p-value is the larger, so the correction only widens: what "
        "`ladder fit` does when a log has both kinds of label). 'PPI alone': the "
        "prediction-powered p-value alone decides. "
        f"{HUMAN_SHARE:.0%} is the headline share, fixed in advance: ~24 queries, the "
        "few-labels regime of theory.md §9. On test (true labels) the target is met when "
        f"the chosen point's quality ≥ {TARGET} × the best single model's test quality; "
        "margin = quality − that. Rates: 90% Clopper–Pearson; cost: share of the best "
        "model's test cost, mean with a 90% t interval over the resamples; 'uncertified': "
        "resamples where no point passed and the dearest one is deployed.", "",
        "| benchmark | labels | met | rate [90% CI] | margin min / median / max | "
        "cost [90% CI] | uncertified | human labels |", "|---|---|---|---|---|---|---|---|",
    ]
    for bench, r in results.items():
        for name, label in LABELLINGS.items():
            s = _summary(r["runs"], name)
            m = s["margin"]
            lines.append(f"| {bench} | {label} | {s['met']}/{len(m)} | {ci(s['rate'], '.2f')} "
                         f"| {min(m):+.3f} / {np.median(m):+.3f} / {max(m):+.3f} | "
                         f"{ci(s['cost'])} | {s['fallback']} | {s['human']} |")
    added = {b: _t([run[SHIPPED]["cost_share"] - run["judge"]["cost_share"]
                    for run in r["runs"]]) for b, r in results.items()}
    judge = {b: _summary(r["runs"], "judge") for b, r in results.items()}
    alone = {b: _summary(r["runs"], ALONE) for b, r in results.items()}
    lines += ["", f"Cost the correction adds ({LABELLINGS[SHIPPED]} − judge labels as the "
              "truth, share of the best model's cost, per resample): " + "; ".join(
                  f"{b} {ci(a, '+.3f')}" for b, a in added.items()) + ".", "",
              *(f.measured + "." for f in _target_findings(results)), "",
              "Why: the reference judge scores the reference model 1.0 on every query, so "
              f"'{TARGET:.0%} of the best model' becomes, in the judge's view, 'agree with the "
              f"reference on {TARGET:.0%} of queries': stricter than the truth, which lets a "
              "policy differ where the reference is wrong. Read as the truth, the judge's "
              "labels therefore kept the promise on true labels (" + ", ".join(
                  f"{b} {s['met']}/{N_SUBSAMPLES}" for b, s in judge.items())
              + "), at a price: mean cost " + ", ".join(
                  f"{b} {s['cost']['point']:.2f}" for b, s in judge.items())
              + " of the best model's, and " + ", ".join(
                  f"{b} {s['fallback']}" for b, s in judge.items())
              + " resamples certified nothing (the dearest point deployed). The "
              "prediction-powered test alone relaxes that strictness with a few human "
              "labels, but its CLT standard error is too small at ~24 queries (the judge "
              "seldom errs on so few, so the rectifier's variance looks near 0): it met the "
              "target in " + ", ".join(f"{b} {s['met']}/{N_SUBSAMPLES} (worst margin "
                                        f"{min(s['margin']):+.3f})" for b, s in alone.items())
              + ". Hence `ladder fit` only widens: a judge that is too kind is caught by the "
              "prediction-powered test, and one that is too strict is left strict.", ""]
    return lines


def _target_findings(results: dict[str, dict]) -> list[Finding]:
    """Targets met on true labels, of the resamples: judge labels read as the truth, and
    corrected (widening) with the headline share of human labels."""
    findings = []
    for name in ("judge", SHIPPED):
        summaries = {b: _summary(r["runs"], name) for b, r in results.items()}
        parts = [f"{b} {s['met']}/{N_SUBSAMPLES} (worst margin {min(s['margin']):+.3f}, "
                 f"cost {ci(s['cost'], '.2f')} of the best model's)"
                 for b, s in summaries.items()]
        ok = all(s["met"] >= MET for s in summaries.values())
        findings.append(Finding("judge-target", f"{LABELLINGS[name]}: target met on true "
                                "labels in " + ", ".join(parts), HOLDS if ok else FAILS))
    return findings
