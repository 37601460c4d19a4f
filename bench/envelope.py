"""Seed 003's comparison per benchmark (issue 8 item 4): every two-model cascade and their
upper envelope, the full chain, the best subsequence, dp, auto, router, routed and moa, with
90% bootstrap intervals; the single-shadow-price check at each stage boundary; whether a
pre-generation router beats every cascade, and why (structural cost or routing signal); and
the issue-8 target for `routed`.

Run from the repo root: PYTHONPATH=src:bench .venv/bin/python bench/envelope.py
Zellinger mmlu, medmcqa, triviaqa: fit on the log's train split, reported on its test split;
gsm8k has no test split in the log, so a seeded 50/50 split of its 300 queries (seed 0).
Every choice (thresholds, chains, router variants, routed plans, moa layers, the pair the
deployable envelope uses at each λ) is made on train, by held-out folds where a search is
involved. Writes docs/results/envelope/ (one PNG per benchmark, results.json) and the
"envelope" section of docs/results.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _common import ZELLINGER, machine, write_section
from ladder.evaluate.envelope import (
    Frontier,
    chain_frontier,
    chosen_on_train,
    envelope,
    pair_frontiers,
    refund_family,
    shadow_ratios,
    signal_strength,
    switching_points,
)
from ladder.evaluate.experiment import evaluate, lambda_grid
from ladder.evaluate.intervals import frontier_intervals
from ladder.evaluate.split import split_table
from ladder.policies.stages import PredictorCache
from ladder.runlog import QueryTable, load_runlog

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "envelope"
FAMILIES = ("fixed", "threshold", "dp", "auto", "router", "routed", "moa")
N_LAMBDAS, B = 20, 1000
ENV, PAIR, FULL = "pairwise envelope", "best pair (chosen on train)", "full chain"
CASCADES = (FULL, "threshold", "dp", "auto", PAIR, ENV)  # "every cascade" of seed 003
LABEL = {"fixed": "single models (hull)", "threshold": "best subsequence (`threshold`)",
         ENV: "pairwise envelope (ex post: hull of all pairs' test points)"}


def _f(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None or x != x else format(x, spec)


def _span(c: dict | None, spec: str = ".3f") -> str:
    if not c:
        return "—"
    return f"{_f(c.get('point'), spec)} [{_f(c.get('low'), spec)}, {_f(c.get('high'), spec)}]"


def _frontier_of(ev, family: str) -> Frontier:
    chosen = [(p, o) for p, o in zip(ev.points, ev.outcomes, strict=True) if p.family == family]
    return Frontier(family, [p for p, _ in chosen], [o for _, o in chosen], ev.summary[family])


def _matrices(frontier: Frontier) -> tuple[np.ndarray, np.ndarray]:
    return (np.column_stack([o.cost for o in frontier.outcomes]),
            np.column_stack([o.quality for o in frontier.outcomes]))


def run(bench: str, train: QueryTable, test: QueryTable) -> dict:
    started = time.time()
    labelled = ~np.isnan(test.quality).any(axis=1)
    test = test.rows(labelled)  # as evaluate does: unlabelled rows are never scored
    ev = evaluate(train, test, families=FAMILIES, n_lambdas=N_LAMBDAS, n_resamples=0, n_jobs=2)
    lambdas = lambda_grid(train, N_LAMBDAS)
    with threadpool_limits(1, "blas"):
        cache = PredictorCache(train)
        pairs = pair_frontiers(train, test, lambdas, cache)
        full = chain_frontier(FULL, train.by_cost().models, train, test, lambdas, cache)
    env, picked = envelope(pairs, test, lambdas), chosen_on_train(pairs, test, lambdas)
    fronts = {f: _frontier_of(ev, f) for f in FAMILIES if f in ev.summary}
    fronts.update({p.name: p for p in pairs})
    fronts.update({ENV: env, PAIR: picked, FULL: full})
    cascades = [c for c in CASCADES if c in fronts]
    for name in cascades:
        f = fronts[name]
        fronts[f"{name} refunded"] = refund_family(f"{name} refunded", f.points, f.outcomes,
                                                   test, lambdas)
    aiq = {name: f.summary["aiq"] for name, f in fronts.items()}
    best_cascade = max(cascades, key=aiq.get)
    deployable = max([c for c in cascades if c != ENV], key=aiq.get)
    family_best = max([c for c in ("threshold", "dp", "auto") if c in fronts], key=aiq.get)
    comparisons = [("router", best_cascade), ("router", deployable), ("router", ENV),
                   (f"{best_cascade} refunded", "router"), (f"{deployable} refunded", "router"),
                   ("routed", family_best), ("routed", "router"), ("routed", ENV),
                   ("threshold", ENV), ("threshold", PAIR), (ENV, FULL), ("threshold", FULL),
                   (PAIR, FULL)]
    comparisons = [c for c in comparisons if c[0] in fronts and c[1] in fronts]
    with threadpool_limits(1, "blas"):
        cis = frontier_intervals(
            {name: _matrices(f) for name, f in fronts.items()}, test.cost, test.quality,
            comparisons=comparisons, b=B, seed=0)
    diffs = {(c["a"], c["b"]): c for c in cis["comparisons"]}
    ranked = sorted(pairs, key=lambda p: -p.summary["aiq"])
    switches = switching_points(pairs, env)
    result = {
        "benchmark": bench, "n_train": train.n, "n_test": test.n,
        "models": ev.models, "lambdas": [float(x) for x in lambdas], "notes": ev.notes,
        "ci": cis["families"],
        "summary": {name: {k: v for k, v in f.summary.items() if k != "mix_at_98"}
                    for name, f in fronts.items()},
        "pairs_ranked": [p.name for p in ranked], "n_pairs": len(pairs),
        "envelope_vertices": switches,
        "envelope_owners": sorted({s["pair"] for s in switches if s["pair"]}),
        "best_cascade": best_cascade, "best_deployable_cascade": deployable,
        "best_cascade_family": family_best,
        "comparisons": cis["comparisons"],
        "shadow": {"full chain": shadow_ratios(full.points),
                   "best subsequence": shadow_ratios(fronts["threshold"].points),
                   "best subsequence chains": Counter(" → ".join(p.chain) for p in
                                                      fronts["threshold"].points
                                                      ).most_common()},
        "signal": _signal(ev, train, test, cache, fronts["threshold"]) if "router" in fronts
        else None,
        "routed": _routed_diagnosis(ev, lambdas, train, test) if "routed" in fronts else None,
    }
    result["diffs"] = {f"{a} − {b}": d for (a, b), d in diffs.items()}
    result["seconds"] = time.time() - started
    _plot(bench, fronts, ev.models, test, OUT / f"{bench}.png")
    return result


def _signal(ev, train: QueryTable, test: QueryTable, cache: PredictorCache,
            subsequence: Frontier) -> dict:
    """AUROC on test of the router's pre-generation ĝ_m(x) against the cascade's
    post-generation p̂ after running m alone, for each model's correctness; the router is
    the variant chosen at most λ values (on train)."""
    routers = [ev.policies[("router", p.lam)] for p in ev.family_points("router")]
    variant = Counter(r.variant_ for r in routers).most_common(1)[0][0]
    router = next(r for r in routers if r.variant_ == variant)
    pre = router.predict_quality(test)
    rows = {}
    for m, model in enumerate(test.models):
        post = cache.scores(test, [m])[:, 0]
        rows[model] = signal_strength(pre[:, m], post, test.quality[:, m])
    firsts = Counter(p.chain[0] for p in subsequence.points)
    return {"router_variant": variant, "per_model": rows,
            "first_rungs": firsts.most_common(), "cheapest": test.by_cost().models[0]}


def _routed_diagnosis(ev, lambdas, train: QueryTable, test: QueryTable) -> list[dict]:
    """Per λ: held-out train objective (train folds) and test objective of routed, the best
    subsequence and the router; routed's choice (start price, plans)."""
    test_obj = {(p.family, p.lam): p.quality - p.lam * p.cost for p in ev.points}
    rows = []
    for lam in lambdas:
        lam = float(lam)
        routed, threshold = ev.policies[("routed", lam)], ev.policies[("threshold", lam)]
        router = ev.policies[("router", lam)]
        rows.append({
            "lambda": lam,
            "train": {"routed": routed.train_objective_, "threshold": threshold.train_objective_,
                      "router": router.choice_["objective"]},
            "test": {f: test_obj[(f, lam)] for f in ("routed", "threshold", "router")},
            "start_price": routed.start_price_,
            "plans": {s: " → ".join(p.chain_) for s, p in routed.plans_.items()},
            "train_starts": _shares(routed.starts(train), train),
            "test_starts": _shares(routed.starts(test), test),
        })
    return rows


def _shares(starts: np.ndarray, table: QueryTable) -> dict[str, float]:
    counts = Counter(table.models[i] for i in starts)
    return {m: c / table.n for m, c in counts.most_common()}


def _plot(bench: str, fronts: dict, models: list[dict], test: QueryTable, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, f in fronts.items():
        if "→" in name and "refunded" not in name:
            h = f.summary["hull"]
            ax.plot([v["cost"] for v in h], [v["quality"] for v in h], color="0.6", lw=0.6,
                    alpha=0.45, zorder=1)
    h = fronts[ENV].summary["hull"]
    ax.plot([v["cost"] for v in h], [v["quality"] for v in h], color="black", lw=2.6,
            label="pairwise envelope (36 pairs faint)", zorder=3)
    styles = {FULL: ("tab:brown", "--"), "threshold": ("tab:blue", "-"),
              "router": ("tab:red", "-"), "routed": ("tab:purple", "-"),
              "moa": ("tab:olive", ":"), "auto": ("tab:green", "-."),
              f"{ENV} refunded": ("0.3", ":")}
    for name, (color, ls) in styles.items():
        if name in fronts:
            h = fronts[name].summary["hull"]
            ax.plot([v["cost"] for v in h], [v["quality"] for v in h], color=color, ls=ls,
                    lw=1.5, label=LABEL.get(name, name).replace("`", ""), zorder=4,
                    drawstyle="default")
    for m in models:
        ax.scatter(m["cost"], m["quality"], color="black", s=18, zorder=5)
        ax.annotate(m["name"], (m["cost"], m["quality"]), fontsize=6, xytext=(3, -8),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query, USD (test, log scale)")
    ax.set_ylabel("accuracy (test)")
    ax.set_title(f"{bench}: seed 003's comparison (fit on train, test n = {test.n})")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _tables() -> list[tuple[str, QueryTable, QueryTable, str]]:
    log = load_runlog(ZELLINGER)
    out = []
    for bench in ("mmlu", "medmcqa", "triviaqa", "gsm8k"):
        table = QueryTable.from_runlog(log, benchmark=bench)
        if (table.split == "test").any():
            out.append((bench, table.rows(table.split == "train"),
                        table.rows(table.split == "test"), "the log's split"))
        else:
            train, test, _ = split_table(table, 0.5, 0)
            out.append((bench, train, test, "seeded 50/50 split (seed 0)"))
    return out


def main() -> int:
    if not ZELLINGER.is_dir():
        print(f"needs the Zellinger log at {ZELLINGER}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = []
    for bench, train, test, how in _tables():
        r = run(bench, train, test)
        r["split"] = how
        results.append(r)
        print(f"{bench}: {r['seconds']:.0f} s", file=sys.stderr)
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    text = section(results, time.time() - started, machine())
    write_section("envelope", text)
    print(text)
    return 0



def _row(r: dict, name: str, label: str | None = None) -> str:
    ci, s = r["ci"].get(name), r["summary"].get(name)
    if ci is None:
        return f"| {label or name} | skipped: {'; '.join(r['notes'])} | | | |"
    return (f"| {label or LABEL.get(name, name)} | {_span(ci['aiq'])} | {_span(ci['cost_at_98'])}"
            f" | {_span(ci['cost_at_100'])} | {_f(s['max_quality'])} |")


def _diff(r: dict, a: str, b: str, key: str = "aiq") -> dict | None:
    return r["diffs"].get(f"{a} − {b}", {}).get(key)


def _sign(d: dict | None) -> str:
    """'>' / '<' when the 90% interval excludes 0, '≈' when it holds it."""
    if not d or d.get("low") is None or d.get("high") is None:
        return "?"
    return ">" if d["low"] > 0 else "<" if d["high"] < 0 else "≈"


def _shadow_cell(rows: list[dict]) -> str:
    used = [x for x in rows if x["n_lambdas"]]
    if not used:
        return "no boundary in use"
    return "; ".join(f"b{x['boundary']}: {_f(x['median_ratio'], '.2f')} "
                     f"({_f(x['q1'], '.2f')}–{_f(x['q3'], '.2f')}, {x['n_lambdas']} λ)"
                     for x in used)


def section(results: list[dict], seconds: float, where: str) -> str:
    lines = [
        "## Seed 003's comparison: pairwise envelope, chains, routers (issue 8, item 4)", "",
        f"Produced by `PYTHONPATH=src:bench .venv/bin/python bench/envelope.py` "
        f"({seconds:.0f} s; {where}). Zellinger log, all nine models. mmlu, medmcqa and "
        "triviaqa: fit on the log's train split, reported on its test split; gsm8k has no "
        "test split in the log, so a seeded 50/50 split of its 300 queries (seed 0; small, "
        "read it as indicative). Every policy is fitted per λ on train (21 λ: 0 and 20 "
        "geometric values) and replayed on test; every search (chains, alphas, router "
        "variants, routed plans, moa layers, and the pair the deployable envelope uses at "
        "each λ) is decided on held-out folds of train. Intervals: 90% percentile "
        "bootstrap over test queries, 1,000 resamples shared by every row, so differences "
        "are paired by query (`ladder.evaluate.intervals.frontier_intervals`, seed 0, the "
        "resamples `evaluate` uses). AIQ: area under the test hull over [cheapest, dearest "
        "model cost]; cost@98% / cost@100%: the least hull cost reaching 98% / 100% of the "
        "most accurate single model's test accuracy, as a share of that model's cost "
        "(— = not reached).", "",
        "Rows: *pair* = threshold cascade of two models, cheaper first (36 pairs); *pairwise "
        "envelope* = the hull of all 36 pairs' test points, i.e. the best pair picked after "
        "seeing test at each budget (seed 003's object; optimistic, not deployable); *best "
        "pair (chosen on train)* = at each λ the pair with the best held-out train objective "
        "(the deployable envelope); *full chain* = threshold cascade over all nine models in "
        "cost order; *best subsequence* = family `threshold` (every cost-ordered chain of "
        "1–3 models and the full ladder, chosen per λ on train folds); `dp`, `auto`, "
        "`router`, `routed`, `moa` as in `ladder evaluate`. *refunded*: the same decisions "
        "with the first stage's cost removed on every query the cascade escalated (what the "
        "cascade would cost had it known in advance which queries to send up).", "",
    ]
    for r in results:
        top = r["pairs_ranked"][:3]
        lines += [f"### {r['benchmark']} ({r['n_train']} train / {r['n_test']} test, "
                  f"{r['split']}; {r['seconds']:.0f} s)", "",
                  "| policy | AIQ [90% CI] | cost@98% [90% CI] | cost@100% [90% CI] | "
                  "max accuracy |", "|---|---|---|---|---|",
                  _row(r, "fixed")]
        lines += [_row(r, p, f"pair {p} (#{i + 1} of {r['n_pairs']} by test AIQ)")
                  for i, p in enumerate(top)]
        lines += [_row(r, n) for n in (PAIR, ENV, FULL, "threshold", "dp", "auto", "router",
                                       "routed", "moa")]
        owners = r["envelope_owners"]
        lines += ["", f"{r['n_pairs']} pairs; the envelope's hull has "
                  f"{len(r['envelope_vertices'])} vertices from {len(owners)} pair(s): "
                  f"{', '.join(owners)}. Best subsequence chains chosen over the 21 λ: "
                  + "; ".join(f"{c} ×{n}" for c, n in r["shadow"]["best subsequence chains"])
                  + ".", "", f"![seed 003 comparison, {r['benchmark']}](results/envelope/"
                  f"{r['benchmark']}.png)", ""]
    lines += ["### Seed 003's structure claims (AIQ differences, paired 90% CI)", "",
              "| benchmark | envelope − full chain | best subsequence − envelope | "
              "best subsequence − best pair (train) | best subsequence − full chain | "
              "best pair (train) − full chain |",
              "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['benchmark']} | {_span(_diff(r, ENV, FULL), '+.3f')} | "
                     f"{_span(_diff(r, 'threshold', ENV), '+.3f')} | "
                     f"{_span(_diff(r, 'threshold', PAIR), '+.3f')} | "
                     f"{_span(_diff(r, 'threshold', FULL), '+.3f')} | "
                     f"{_span(_diff(r, PAIR, FULL), '+.3f')} |")
    lines += ["", "### Shadow-price check (theory.md §3): marginal accuracy per cost at each "
              "boundary ÷ λ, on train", "",
              "Per boundary (b1 = after the first stage): median over the λ > 0 at which "
              "the boundary is in use (θ finite), interquartile range, count. The rate is "
              "Δaccuracy/Δcost of escalating the 10% of queries (≥ 10) closest to the "
              "threshold. Seed 003: one shadow price equalises all boundaries (ratio 1).", "",
              "| benchmark | full chain (9 models) | best subsequence |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['benchmark']} | {_shadow_cell(r['shadow']['full chain'])} | "
                     f"{_shadow_cell(r['shadow']['best subsequence'])} |")
    lines += ["", "### Does a pre-generation router beat every cascade? Structural cost or "
              "signal?", "",
              "Seed 003 compares the router with the best cascade. Here the *best "
              "deployable cascade* is the best (on test AIQ) of the cascade rows whose every "
              "choice is made on train (full chain, best subsequence, dp, auto, best pair "
              "chosen on train); the ex post envelope is shown too, as the bar no deployable "
              "policy is held to. *Refunded*: that cascade with its first stage refunded on "
              "escalated queries; if it beats the router, the router's edge is the structural "
              "cost of paying the cheap model first. Signal: test AUROC for a model's "
              "correctness, of the router's pre-generation ĝ (the variant chosen at most λ, "
              "on train) and of the cascade's post-generation p̂ after running that model; "
              "shown for the cheapest model and for the first rung the best subsequence uses "
              "most.", "",
              "| benchmark | router AIQ | best deployable cascade (AIQ) | router − it | "
              "router − envelope (ex post) | it refunded (AIQ) | refunded − router | "
              "AUROC pre / post, cheapest model | AUROC pre / post, first rung most used |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["signal"] is None:
            lines.append(f"| {r['benchmark']} | skipped | | | | | | | |")
            continue
        dep = r["best_deployable_cascade"]
        sig = r["signal"]
        first = sig["first_rungs"][0][0]

        def auroc(model: str, sig: dict = sig) -> str:
            s = sig["per_model"][model]
            return f"{_f(s['pre_auroc'], '.2f')} / {_f(s['post_auroc'], '.2f')} ({model})"

        lines.append(
            f"| {r['benchmark']} | {_span(r['ci']['router']['aiq'])} | "
            f"{LABEL.get(dep, dep).split(' (`')[0]} ({_f(r['ci'][dep]['aiq']['point'])}) | "
            f"{_span(_diff(r, 'router', dep), '+.3f')} | "
            f"{_span(_diff(r, 'router', ENV), '+.3f')} | "
            f"{_f(r['ci'][dep + ' refunded']['aiq']['point'])} | "
            f"{_span(_diff(r, dep + ' refunded', 'router'), '+.3f')} | "
            f"{auroc(sig['cheapest'])} | {auroc(first)} |")
    lines += ["", "### Issue-8 target: `routed` AIQ ≥ max(best cascade family, `router`) "
              "within the intervals", "",
              "Best cascade family = the best of `threshold`, `dp`, `auto` on test AIQ. Met "
              "when neither paired difference's 90% interval lies below 0. Train = held-out "
              "objective J_λ on train folds (what routed is chosen by); test = J_λ on test.",
              "", "| benchmark | routed AIQ | routed − best family | routed − router | met | "
              "λ where routed's train J ≥ both | … and its test J ≥ both | λ with routing "
              "(start price set) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["routed"] is None:
            lines.append(f"| {r['benchmark']} | skipped | | | | | | |")
            continue
        fam = r["best_cascade_family"]
        d1, d2 = _diff(r, "routed", fam), _diff(r, "routed", "router")
        met = all(d and d["high"] is not None and d["high"] >= 0 for d in (d1, d2))
        rows = [x for x in r["routed"] if x["lambda"] > 0]
        won_train = sum(x["train"]["routed"] >= max(x["train"]["threshold"],
                                                    x["train"]["router"]) - 1e-12 for x in rows)
        won_test = sum(x["test"]["routed"] >= max(x["test"]["threshold"], x["test"]["router"])
                       - 1e-12 for x in rows)
        routing = sum(x["start_price"] is not None for x in rows)
        lines.append(f"| {r['benchmark']} | {_span(r['ci']['routed']['aiq'])} | "
                     f"{_span(d1, '+.3f')} vs {fam} | {_span(d2, '+.3f')} | "
                     f"{'yes' if met else 'no'} | {won_train}/{len(rows)} | "
                     f"{won_test}/{len(rows)} | {routing}/{len(rows)} |")
    lines += ["", READING.strip()]
    return "\n".join(lines) + "\n"


READING = """
### Reading (by hand, from the run above; fits and resamples are seeded, reruns agree)

**Seed 003's structure claims hold.** On all four benchmarks the full nine-model chain is
well below the pairwise envelope (AIQ −0.023 to −0.058, every interval below 0) and below the
deployable best pair too (−0.010 to −0.043). Longer chains add nothing: the best subsequence
(chains of 1–3 models or the full ladder, chosen on train folds) is level with the best pair
chosen on train on every benchmark (−0.007 to +0.000, every interval holds 0). The ex post
envelope sits 0.004–0.030 above every deployable policy; part of that is selection: it is the
hull of 36 × 21 test points, each pair's threshold picked on train but the pair at each budget
picked on test. On mmlu the hull of the nine single models (0.820) is above every fitted
policy but the ex post envelope: there no cascade or router beats mixing single models.

**The single shadow price does not show up in the full chain.** At the first boundary of the
chosen short chains the median ratio to λ is near 1 on mmlu, medmcqa and triviaqa (0.93–1.83,
wide quartiles), but across the nine boundaries of the full chain the ratios range from
negative to above 20. The coordinate-ascent thresholds do maximise J_λ on train; the
first-order condition fails because the cost-ordered chain is not monotone in quality
(qwen2.5-32b-coder and llama3.1-8b are worse than cheaper gpt-4o-mini), many boundaries see a
handful of the 150–300 training queries, and a cut between discrete scores is not a smooth
optimum. This is one more reason the full chain underperforms.

**Seed 003's router claim does not hold on these logs.** The router beats no deployable
cascade: it is level with the best one on mmlu and gsm8k (−0.002 [−0.004, +0.000];
−0.004 [−0.006, +0.002]) and below it on medmcqa (−0.012) and triviaqa (−0.010), intervals
below 0. It is below the ex post envelope on all four. Why, in two numbers per benchmark:
- *Structural cost is small here.* Refunding the cascade's first stage on every escalated
  query raises its AIQ by only 0.000–0.003: the first rungs these cascades mostly use
  (llama3.2-3b, gpt-4o-mini) cost a few percent of the models they escalate to (gpt-4o,
  llama3.1-70b/405b), so paying them first costs little. Refunded, the cascade is above the
  router on all four in point (+0.002 to +0.015; the gsm8k interval holds 0).
- *The signal favours the cascade.* The router's pre-generation ĝ predicts the first rung's
  correctness with AUROC 0.55–0.60 on mmlu, medmcqa and triviaqa (0.68–0.79 on gsm8k), the
  cascade's post-generation p̂ (the model's own log-probability confidence) with 0.62–0.82.
  With 150–300 training prompts and MCQ/short-answer tasks the prompt says little about which
  model will be right, and the answer's confidence says much more.
So on this pool the cascade wins or ties because its post-generation signal is much stronger
and the price of that signal (running the cheap model first) is a few percent of the
escalation cost. Seed 003's mechanism, a router winning on structural cost with a comparable
signal, needs a pool where the first rung's cost is a sizeable share of the big model's, or a
router trained on far more prompts.

**Issue-8 target for `routed`: met, narrowly, on all four** (routed − best cascade family and
routed − router: no interval below 0). But routed is not above them: it ties the best family
everywhere (−0.004 to +0.000) and beats the router only on medmcqa and triviaqa (+0.010,
+0.009). Why it does not win: its search contains the unrouted best chain and the router's
single-model plans, so its held-out train objective is ≥ both at every λ by construction,
yet its test objective is ≥ both at only 7–15 of the 20 λ > 0. Routing the start was chosen
at only 8, 11, 4 and 2 of the 20 λ (mmlu, medmcqa, triviaqa, gsm8k); elsewhere routed is the
unrouted best chain. With a pre-generation signal of AUROC ≈ 0.6, routing the first rung buys
little, and the gain it shows on 285–300 train queries is mostly selection noise over the
larger search (chains × alphas × start prices × per-start plans). Per-λ train and test
objectives, start prices, plans and start shares on train and test are in results.json
("routed").
"""


if __name__ == "__main__":
    sys.exit(main())
