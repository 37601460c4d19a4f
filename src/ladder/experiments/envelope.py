"""`envelope`: seed 003's comparison on each Zellinger benchmark. All two-model
cascades and their upper envelope, the full chain, the best subsequence, dp, auto,
router, routed and moa with paired 90% intervals; the one-shadow-price check at every stage
boundary; and whether a pre-generation router beats every cascade, split into structural
cost (refunded cascades) and signal (AUROC before and after generation).

The numbers come from `envelope_runs.compare`; this module renders them and judges the
seed's three claims, every verdict from intervals (or, for the shadow price, from the
spread over λ), with "not settled" said where an interval straddles the claim's bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ladder.experiments.base import (
    FAILS,
    HOLDS,
    UNTESTABLE,
    BenchmarkExperiment,
    Finding,
    Section,
    relative,
)
from ladder.experiments.data import DataDir
from ladder.experiments.envelope_runs import ENV, FULL, LABEL, PAIR, compare
from ladder.experiments.verdicts import ci, number

MIN_LAMBDAS = 5  # a boundary's spread over λ is judged only where it is in use this often
ROWS = (PAIR, ENV, FULL, "threshold", "dp", "auto", "router", "routed", "moa")


class Envelope(BenchmarkExperiment):
    name = "envelope"
    title = "Seed 003: the pairwise envelope, one shadow price, and routers vs cascades"

    def run(self, unit: str, data: DataDir, out: Path) -> dict:
        train, test, how, ev = data.evaluation(unit)
        return {"split": how, **compare(train, test, ev, out / f"{unit}.png")}

    def cost(self, unit: str) -> float:
        # the 36 pair sweeps grow with the split sizes
        return {"mmlu": 0.6, "medmcqa": 0.5, "triviaqa": 0.5}.get(unit, 0.3)

    def render(self, results: dict[str, dict], out: Path, page: Path) -> Section:
        if not results:
            return Section("No Zellinger benchmark in the data folder.")
        lines = _intro(next(iter(results.values())))
        for bench, r in results.items():
            lines += _benchmark(bench, r, relative(out / r["figure"], page))
        lines += [*_structure(results), *_shadow(results), *_router(results),
                  *_routed(results), *_reading(results)]
        return Section("\n".join(lines),
                       [_envelope_claim(results), _shadow_claim(results),
                        _router_claim(results)])


Name = str | Callable[[dict], str]  # a row name, or one read off a benchmark's results


def _diff(r: dict, a: Name, b: Name) -> dict | None:
    """The paired AIQ difference a − b on one benchmark."""
    return r["diffs"].get(f"{a(r) if callable(a) else a} − {b(r) if callable(b) else b}")


def _sign(d: dict | None) -> str:
    """'>' / '<' when the 90% interval excludes 0, '≈' when it holds it."""
    if not d or d.get("low") is None or d.get("high") is None:
        return "?"
    return ">" if d["low"] > 0 else "<" if d["high"] < 0 else "≈"


def _range(values: Iterable[float | None], spec: str = "+.3f") -> str:
    v = sorted(x for x in values if x is not None)
    if not v:
        return "—"
    return number(v[0], spec) if v[0] == v[-1] else f"{number(v[0], spec)} to {number(v[-1], spec)}"


def _count(results: dict[str, dict], a: Name, b: Name, side: str) -> str:
    """'k/n': benchmarks whose a − b interval lies on `side` ('>', '<' or '≈')."""
    signs = [_sign(_diff(r, a, b)) for r in results.values()]
    return f"{signs.count(side)}/{len(signs)}"


def _points(results: dict[str, dict], a: Name, b: Name) -> list[float | None]:
    return [(_diff(r, a, b) or {}).get("point") for r in results.values()]


def _judge(status: dict[str, tuple[str, bool]]) -> tuple[str, str]:
    """A universal claim's verdict from each benchmark's (side, point on the claim's side):
    side 'holds'/'fails' when its interval lies on one side of the claim, else 'open'. Any
    failure fails it; open benchmarks are named "not settled" and judged by their points."""
    open_ = [b for b, (side, _) in status.items() if side == "open"]
    if any(side == "fails" for side, _ in status.values()):
        verdict = FAILS
    else:
        verdict = HOLDS if all(ok for b, (_, ok) in status.items() if b in open_) else FAILS
    note = f"; not settled on {', '.join(open_)} (interval holds 0)" if open_ else ""
    return verdict, note


def _intro(r: dict) -> list[str]:
    k, n_lam = len(r["models"]), r["n_lambdas"]
    return [
        f"Zellinger log, all {k} models. Each benchmark is fitted on its train split and "
        "replayed on its test split (the log's split where it has one, else a seeded "
        f"50/50 split; the header says which). Every policy is fitted per λ on train "
        f"({n_lam} λ: 0 and {n_lam - 1} geometric values); every search (chains, alphas, "
        "router variants, routed plans, moa layers, and the pair the deployable envelope "
        "uses at each λ) is decided on held-out folds of train. The families come from "
        "the run's shared evaluation; the pairs and the full chain are fitted on the same "
        "λ grid. Intervals: 90% percentile bootstrap over test queries, 1,000 resamples "
        "shared by every row (those `evaluate` draws, seed 0), so differences are paired "
        "by query. AIQ: area under the test hull over [cheapest, dearest model cost]; "
        "cost@98% / cost@100%: the least hull cost reaching 98% / 100% of the most "
        "accurate single model's test accuracy, as a share of that model's cost "
        "(— = not reached).", "",
        f"Rows: *pair* = threshold cascade of two models, cheaper first ({r['n_pairs']} "
        f"pairs); *pairwise envelope* = the hull of all {r['n_pairs']} pairs' test points, "
        "i.e. the best pair picked after seeing test at each budget (seed 003's object; "
        "optimistic, not deployable); *best pair (chosen on train)* = at each λ the pair "
        "with the best held-out train objective (the deployable envelope); *full chain* = "
        f"threshold cascade over all {k} models in cost order; *best subsequence* = family "
        "`threshold` (every cost-ordered chain of 1–3 models and the full ladder, chosen "
        "per λ on train folds); `dp`, `auto`, `router`, `routed`, `moa` as in `ladder "
        "evaluate`. *refunded*: the same decisions with the first stage's cost removed on "
        "every query the cascade escalated (what the cascade would cost had it known in "
        "advance which queries to send up).", "",
    ]


def _row(r: dict, name: str, label: str | None = None) -> str:
    row = r["rows"].get(name)
    if row is None:
        return f"| {label or name} | skipped: {'; '.join(r['notes']) or 'not fitted'} | | | |"
    return (f"| {label or LABEL.get(name, name)} | {ci(row['aiq'])} | "
            f"{ci(row['cost_at_98'])} | {ci(row['cost_at_100'])} | "
            f"{number(row['max_quality'])} |")


def _benchmark(bench: str, r: dict, figure: str) -> list[str]:
    lines = [f"### {bench} ({r['n_train']} train / {r['n_test']} test, {r['split']})", "",
             "| policy | AIQ [90% CI] | cost@98% [90% CI] | cost@100% [90% CI] | "
             "max accuracy |", "|---|---|---|---|---|", _row(r, "fixed")]
    lines += [_row(r, p, f"pair {p} (#{i + 1} of {r['n_pairs']} by test AIQ)")
              for i, p in enumerate(r["pairs_ranked"])]
    lines += [_row(r, n) for n in ROWS]
    owners = r["envelope_owners"]
    chains = "; ".join(f"{c} ×{n}" for c, n in r["subsequence_chains"])
    return [
        *lines, "", f"{r['n_pairs']} pairs; the envelope's hull has {r['envelope_vertices']} "
        f"vertices from {len(owners)} pair(s): {', '.join(owners)}. Best subsequence chains "
        f"chosen over the {r['n_lambdas']} λ: {chains}.", "",
        f"![seed 003 comparison, {bench}]({figure})", ""]


def _structure(results: dict[str, dict]) -> list[str]:
    cells = ((ENV, FULL), ("threshold", ENV), ("threshold", PAIR), ("threshold", FULL),
             (PAIR, FULL))
    lines = ["### Seed 003's structure claims (AIQ differences, paired 90% CI)", "",
             "| benchmark | envelope − full chain | best subsequence − envelope | "
             "best subsequence − best pair (train) | best subsequence − full chain | "
             "best pair (train) − full chain |", "|---|---|---|---|---|---|"]
    for bench, r in results.items():
        lines.append(f"| {bench} | "
                     + " | ".join(ci(_diff(r, a, b), "+.3f") for a, b in cells) + " |")
    return [*lines, ""]


def _shadow_cell(rows: list[dict]) -> str:
    used = [x for x in rows if x["n_lambdas"]]
    if not used:
        return "no boundary in use"
    return "; ".join(f"b{x['boundary']}: {number(x['median_ratio'], '.2f')} "
                     f"({number(x['q1'], '.2f')}–{number(x['q3'], '.2f')}, {x['n_lambdas']} λ)"
                     for x in used)


def _shadow(results: dict[str, dict]) -> list[str]:
    k = len(next(iter(results.values()))["models"])
    lines = ["### Shadow-price check (theory.md §3): marginal accuracy per cost at each "
             "boundary ÷ λ, on train", "",
             "Per boundary (b1 = after the first stage): median over the λ > 0 at which "
             "the boundary is in use (θ finite), interquartile range, count. The rate is "
             "Δaccuracy/Δcost of escalating the 10% of queries (≥ 10) closest to the "
             "threshold. Seed 003: one shadow price equalises all boundaries (ratio 1).", "",
             f"| benchmark | full chain ({k} models) | best subsequence |", "|---|---|---|"]
    for bench, r in results.items():
        lines.append(f"| {bench} | {_shadow_cell(r['shadow']['full chain'])} | "
                     f"{_shadow_cell(r['shadow']['best subsequence'])} |")
    return [*lines, ""]


def _auroc(sig: dict, model: str) -> str:
    s = sig["per_model"][model]
    return f"{number(s['pre_auroc'], '.2f')} / {number(s['post_auroc'], '.2f')} ({model})"


def _router(results: dict[str, dict]) -> list[str]:
    lines = ["### Does a pre-generation router beat every cascade? Structural cost or "
             "signal?", "",
             "Seed 003 compares the router with the best cascade. Here the *best deployable "
             "cascade* is the best (on test AIQ) of the cascade rows whose every choice is "
             "made on train (full chain, best subsequence, dp, auto, best pair chosen on "
             "train); the ex post envelope is shown too, as the bar no deployable policy is "
             "held to. *Refunded*: that cascade with its first stage refunded on escalated "
             "queries; if it beats the router, the router's edge is the structural cost of "
             "paying the cheap model first. Signal: test AUROC for a model's correctness, "
             "of the router's pre-generation ĝ (the variant chosen at most λ, on train) and "
             "of the cascade's post-generation p̂ after running that model; shown for the "
             "cheapest model and for the first rung the best subsequence uses most.", "",
             "| benchmark | router AIQ | best deployable cascade (AIQ) | router − it | "
             "router − envelope (ex post) | it refunded (AIQ) | refunded − router | "
             "AUROC pre / post, cheapest model | AUROC pre / post, first rung most used |",
             "|---|---|---|---|---|---|---|---|---|"]
    for bench, r in results.items():
        sig, dep = r["signal"], r["best_deployable_cascade"]
        if sig is None:
            lines.append(f"| {bench} | skipped: {'; '.join(r['notes'])} | | | | | | | |")
            continue
        lines.append(
            f"| {bench} | {ci(r['rows']['router']['aiq'])} | "
            f"{LABEL.get(dep, dep).split(' (`')[0]} ({number(r['rows'][dep]['aiq']['point'])}) | "
            f"{ci(_diff(r, 'router', dep), '+.3f')} | "
            f"{ci(_diff(r, 'router', ENV), '+.3f')} | "
            f"{number(r['rows'][dep + ' refunded']['aiq']['point'])} | "
            f"{ci(_diff(r, dep + ' refunded', 'router'), '+.3f')} | "
            f"{_auroc(sig, sig['cheapest'])} | {_auroc(sig, sig['first_rungs'][0][0])} |")
    return [*lines, ""]


def _routed_met(r: dict) -> bool:
    return all(d and d["high"] is not None and d["high"] >= 0
               for d in (_diff(r, "routed", r["best_cascade_family"]),
                         _diff(r, "routed", "router")))


def _routed(results: dict[str, dict]) -> list[str]:
    lines = ["### Target: `routed` AIQ ≥ max(best cascade family, `router`) within "
             "the intervals", "",
             "Best cascade family = the best of `threshold`, `dp`, `auto` on test AIQ. Met "
             "when neither paired difference's 90% interval lies below 0. Train = held-out "
             "objective J_λ on train folds (what routed is chosen by); test = J_λ on test.", "",
             "| benchmark | routed AIQ | routed − best family | routed − router | met | "
             "λ where routed's train J ≥ both | … and its test J ≥ both | λ with routing "
             "(start price set) |", "|---|---|---|---|---|---|---|---|"]
    for bench, r in results.items():
        if r["routed"] is None:
            lines.append(f"| {bench} | skipped: {'; '.join(r['notes'])} | | | | | | |")
            continue
        fam = r["best_cascade_family"]
        c, n = r["routed"], r["routed"]["n"]
        lines.append(f"| {bench} | {ci(r['rows']['routed']['aiq'])} | "
                     f"{ci(_diff(r, 'routed', fam), '+.3f')} vs {fam} | "
                     f"{ci(_diff(r, 'routed', 'router'), '+.3f')} | "
                     f"{'yes' if _routed_met(r) else 'no'} | {c['won_train']}/{n} | "
                     f"{c['won_test']}/{n} | {c['routing']}/{n} |")
    return [*lines, ""]


def _dep(r: dict) -> str:
    return r["best_deployable_cascade"]


def _reading(results: dict[str, dict]) -> list[str]:
    """The section's summary, every figure read off the tables above."""
    mixing = [b for b, r in results.items()
              if r["rows"]["fixed"]["aiq"]["point"] > max(
                  r["rows"][n]["aiq"]["point"] for n in ROWS if n in r["rows"] and n != ENV)]
    full = [x for r in results.values() for x in r["shadow"]["full chain"]
            if x["n_lambdas"] >= MIN_LAMBDAS]
    medians = [x["median_ratio"] for x in full]
    first = [r["shadow"]["best subsequence"][0]["median_ratio"] for r in results.values()
             if r["shadow"]["best subsequence"]]
    lines = ["### Reading", "",
             f"- **Structure.** Envelope − full chain: {_range(_points(results, ENV, FULL))} "
             f"AIQ, interval above 0 on {_count(results, ENV, FULL, '>')}; best pair (train) − "
             f"full chain: {_range(_points(results, PAIR, FULL))}, above 0 on "
             f"{_count(results, PAIR, FULL, '>')}. Best subsequence − best pair (train): "
             f"{_range(_points(results, 'threshold', PAIR))}, interval holds 0 on "
             f"{_count(results, 'threshold', PAIR, '≈')}. Best subsequence − envelope: "
             f"{_range(_points(results, 'threshold', ENV))}, below 0 on "
             f"{_count(results, 'threshold', ENV, '<')}; the envelope picks its pair at "
             "each budget on test, so part of that gap is selection. Benchmarks where the "
             "hull of the single models has a higher AIQ than every fitted policy but the "
             f"ex post envelope: {', '.join(mixing) or 'none'}.",
             f"- **Shadow price.** At the first boundary of the best subsequence the median "
             f"ratio to λ is {_range(first, '.2f')}. Across the full chain's boundaries in use "
             f"at ≥ {MIN_LAMBDAS} λ the medians range {_range(medians, '.2f')}, and the "
             f"interquartile range excludes 1 at {sum(map(_excludes_one, full))} of "
             f"{len(full)}."]
    signal = {b: r for b, r in results.items() if r["signal"] is not None}
    if signal:
        rungs = [r["signal"]["per_model"][r["signal"]["first_rungs"][0][0]]
                 for r in signal.values()]
        lift = [r["rows"][f"{_dep(r)} refunded"]["aiq"]["point"]
                - r["rows"][_dep(r)]["aiq"]["point"] for r in signal.values()]
        lines.append(
            f"- **Router.** Router − best deployable cascade: "
            f"{_range(_points(signal, 'router', _dep))}; interval above 0 on "
            f"{_count(signal, 'router', _dep, '>')}, holding 0 on "
            f"{_count(signal, 'router', _dep, '≈')}, below 0 on "
            f"{_count(signal, 'router', _dep, '<')}. Router − envelope below 0 on "
            f"{_count(signal, 'router', ENV, '<')}. Structural cost: refunding the "
            f"cascade's first stage raises its AIQ by {_range(lift)}; refunded − router "
            f"{_range(_points(signal, lambda r: f'{_dep(r)} refunded', 'router'))}, above 0 "
            f"on {_count(signal, lambda r: f'{_dep(r)} refunded', 'router', '>')}. Signal, "
            f"for the first rung the best subsequence uses most: AUROC of the router's ĝ "
            f"{_range((s['pre_auroc'] for s in rungs), '.2f')}, of the cascade's p̂ "
            f"{_range((s['post_auroc'] for s in rungs), '.2f')}.")
    routed = {b: r for b, r in results.items() if r["routed"] is not None}
    if routed:
        counts = {b: r["routed"] for b, r in routed.items()}
        lines.append(
            f"- **`routed`.** The target is met on {sum(map(_routed_met, routed.values()))}/"
            f"{len(routed)}; routed − best family "
            f"{_range(_points(routed, 'routed', lambda r: r['best_cascade_family']))}, "
            f"routed − router {_range(_points(routed, 'routed', 'router'))}. Its test J_λ is "
            f"≥ both rivals' at {_range((c['won_test'] for c in counts.values()), 'd')} of "
            f"{next(iter(counts.values()))['n']} λ > 0, and routing the start was chosen at "
            + ", ".join(f"{c['routing']} ({b})" for b, c in counts.items()) + ".")
    return lines


def _point_is(d: dict | None, test: Callable[[float], bool]) -> bool:
    """Whether a difference's point estimate passes `test` (False when there is none)."""
    point = (d or {}).get("point")
    return point is not None and test(point)


def _excludes_one(row: dict) -> bool:
    return row["q1"] is not None and (row["q3"] < 1 or row["q1"] > 1)


def _envelope_claim(results: dict[str, dict]) -> Finding:
    status = {}
    for bench, r in results.items():
        sub, env_full = _diff(r, "threshold", ENV), _diff(r, ENV, FULL)
        signs = (_sign(sub), _sign(env_full))
        side = ("fails" if signs[0] == ">" or signs[1] == "<" else
                "holds" if signs == ("<", ">") else "open")
        status[bench] = (side, _point_is(sub, lambda p: p <= 0)
                         and _point_is(env_full, lambda p: p >= 0))
    verdict, note = _judge(status)
    measured = ("best subsequence − pairwise envelope, AIQ: "
                + ", ".join(f"{b} {ci(_diff(r, 'threshold', ENV), '+.3f')}"
                            for b, r in results.items())
                + f"; envelope − full chain {_range(_points(results, ENV, FULL))}, above 0 on "
                f"{_count(results, ENV, FULL, '>')}; best subsequence − best pair chosen on "
                f"train {_range(_points(results, 'threshold', PAIR))}" + note)
    return Finding("envelope", measured, verdict)


def _shadow_claim(results: dict[str, dict]) -> Finding:
    parts, failing = [], 0
    for bench, r in results.items():
        judged = [x for x in r["shadow"]["full chain"] if x["n_lambdas"] >= MIN_LAMBDAS]
        if judged:
            off = sum(_excludes_one(x) for x in judged)
            failing += off > 0
            parts.append(f"{bench} {off}/{len(judged)} (medians "
                         f"{_range((x['median_ratio'] for x in judged), '.2f')})")
    if not parts:
        return Finding("shadow-price", "no boundary of the full chain in use at "
                       f"≥ {MIN_LAMBDAS} λ", UNTESTABLE)
    measured = ("full chain, boundaries whose ratio (marginal accuracy per cost ÷ λ, on train) "
                f"has an interquartile range over λ excluding 1, of those in use at ≥ "
                f"{MIN_LAMBDAS} λ: " + "; ".join(parts))
    return Finding("shadow-price", measured, FAILS if failing else HOLDS)


def _router_claim(results: dict[str, dict]) -> Finding:
    signal = {b: r for b, r in results.items() if r["signal"] is not None}
    if not signal:
        return Finding("router-beats", "no benchmark with prompts to fit a router on",
                       UNTESTABLE)
    status = {}
    for bench, r in signal.items():
        d = _diff(r, "router", _dep(r))
        sign = _sign(d)
        status[bench] = ({">": "holds", "<": "fails"}.get(sign, "open"),
                         _point_is(d, lambda p: p > 0))
    verdict, note = _judge(status)
    measured = ("router − best deployable cascade, AIQ: "
                + ", ".join(f"{b} {ci(_diff(r, 'router', _dep(r)), '+.3f')} (vs "
                            f"{LABEL.get(_dep(r), _dep(r)).split(' (`')[0]})"
                            for b, r in signal.items())
                + f"; router − ex post envelope below 0 on {_count(signal, 'router', ENV, '<')}"
                + note)
    return Finding("router-beats", measured, verdict)
