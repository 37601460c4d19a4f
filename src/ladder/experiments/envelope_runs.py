"""One benchmark of seed 003's comparison: the 36 two-model cascades, their envelope, the
full chain and the refunded cascades, beside the shared evaluation's families, with paired
bootstrap intervals; the shadow-price, signal and `routed` diagnostics; and the figure.

The families (fixed, threshold, dp, auto, router, routed, moa) come from the run's shared
evaluation; only what it lacks is fitted here: the pairs and the full chain, on the same λ
grid, and intervals on the resamples `evaluate` draws (same seed, same test rows), so every
difference below is paired by query with the families' own intervals.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

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
from ladder.evaluate.experiment import Evaluation
from ladder.evaluate.intervals import frontier_intervals
from ladder.policies.stages import PredictorCache
from ladder.runlog import QueryTable

FAMILIES = ("fixed", "threshold", "dp", "auto", "router", "routed", "moa")
ENV, PAIR, FULL = "pairwise envelope", "best pair (chosen on train)", "full chain"
CASCADES = (FULL, "threshold", "dp", "auto", PAIR, ENV)  # "every cascade" of seed 003
B = 1000  # resamples, as the shared evaluation draws them
LABEL = {"fixed": "single models (hull)", "threshold": "best subsequence (`threshold`)",
         ENV: "pairwise envelope (ex post: hull of all pairs' test points)"}


def _family(ev: Evaluation, family: str) -> Frontier:
    chosen = [(p, o) for p, o in zip(ev.points, ev.outcomes, strict=True) if p.family == family]
    return Frontier(family, [p for p, _ in chosen], [o for _, o in chosen], ev.summary[family])


def _matrices(frontier: Frontier) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (cost, quality) of the frontier's points, less exact duplicates and points
    no better on any query than another one: neither is a hull vertex on any resample, so
    the intervals are unchanged, and the envelope's 36 × 21 points shrink to the few dozen
    that the O(P²)-per-resample hull can afford."""
    n = len(frontier.outcomes[0].cost)
    both = np.unique(np.vstack([np.column_stack([o.cost for o in frontier.outcomes]),
                                np.column_stack([o.quality for o in frontier.outcomes])]),
                     axis=1)
    cost, quality = both[:n], both[n:]
    keep = [not ((cost <= cost[:, [j]]).all(axis=0) & (quality >= quality[:, [j]]).all(axis=0)
                 & (np.arange(cost.shape[1]) != j)).any()
            for j in range(cost.shape[1])]
    return cost[:, keep], quality[:, keep]


def compare(train: QueryTable, test: QueryTable, ev: Evaluation, figure: Path) -> dict:
    """Seed 003's comparison on one benchmark; draws `figure`; JSON-able numbers."""
    test = test.rows(~np.isnan(test.quality).any(axis=1))  # the rows `evaluate` scored
    lambdas = np.array([p.lam for p in ev.family_points("threshold")])
    cache = PredictorCache(train)
    pairs = pair_frontiers(train, test, lambdas, cache)
    full = chain_frontier(FULL, train.by_cost().models, train, test, lambdas, cache)
    fronts = {f: _family(ev, f) for f in FAMILIES if f in ev.summary}
    fronts.update({p.name: p for p in pairs})
    fronts.update({ENV: envelope(pairs, test, lambdas), PAIR: chosen_on_train(pairs, test, lambdas),
                   FULL: full})
    aiq = {name: f.summary["aiq"] for name, f in fronts.items()}
    cascades = [c for c in CASCADES if c in fronts]
    best = max(cascades, key=aiq.get)
    deployable = max([c for c in cascades if c != ENV], key=aiq.get)
    family = max([c for c in ("threshold", "dp", "auto") if c in fronts], key=aiq.get)
    for name in dict.fromkeys((best, deployable, ENV)):
        f = fronts[name]
        fronts[f"{name} refunded"] = refund_family(f"{name} refunded", f.points, f.outcomes,
                                                   test, lambdas)
    ranked = sorted(pairs, key=lambda p: -p.summary["aiq"])
    comparisons = [("router", best), ("router", deployable), ("router", ENV),
                   (f"{best} refunded", "router"), (f"{deployable} refunded", "router"),
                   ("routed", family), ("routed", "router"), ("routed", ENV),
                   ("threshold", ENV), ("threshold", PAIR), (ENV, FULL), ("threshold", FULL),
                   (PAIR, FULL)]
    comparisons = [c for c in dict.fromkeys(comparisons) if c[0] in fronts and c[1] in fronts]
    shown = [n for n in ("fixed", *[p.name for p in ranked[:3]], PAIR, ENV, FULL, *FAMILIES[1:])
             if n in fronts]
    needed = dict.fromkeys([*shown, *(x for c in comparisons for x in c)])
    cis = frontier_intervals({n: _matrices(fronts[n]) for n in needed}, test.cost, test.quality,
                             comparisons=comparisons, b=B, seed=0)
    switches = switching_points(pairs, fronts[ENV])
    subsequence = fronts["threshold"]
    _plot(fronts, ev.models, test, figure)
    return {
        "n_train": train.n, "n_test": test.n, "n_lambdas": len(lambdas), "notes": ev.notes,
        "models": [m["name"] for m in ev.models],
        "rows": {n: {**cis["families"][n], "max_quality": fronts[n].summary["max_quality"]}
                 for n in needed},
        "shown": shown, "n_pairs": len(pairs), "pairs_ranked": [p.name for p in ranked[:3]],
        "envelope_vertices": len(switches),
        "envelope_owners": sorted({s["pair"] for s in switches if s["pair"]}),
        "subsequence_chains": Counter(" → ".join(p.chain) for p in subsequence.points
                                      ).most_common(),
        "best_cascade": best, "best_deployable_cascade": deployable,
        "best_cascade_family": family,
        "diffs": {f"{c['a']} − {c['b']}": c["aiq"] for c in cis["comparisons"]},
        "shadow": {"full chain": shadow_ratios(full.points),
                   "best subsequence": shadow_ratios(subsequence.points)},
        "signal": _signal(ev, test, cache, subsequence) if "router" in fronts else None,
        "routed": _routed(ev, lambdas, train, test) if "routed" in fronts else None,
        "figure": figure.name,
    }


def _signal(ev: Evaluation, test: QueryTable, cache: PredictorCache,
            subsequence: Frontier) -> dict:
    """AUROC on test of the router's pre-generation ĝ_m(x) against the cascade's
    post-generation p̂ after running m alone, for each model's correctness; the router is
    the variant chosen at most λ values (on train)."""
    routers = [ev.policies[("router", p.lam)] for p in ev.family_points("router")]
    variant = Counter(r.variant_ for r in routers).most_common(1)[0][0]
    pre = next(r for r in routers if r.variant_ == variant).predict_quality(test)
    rows = {model: signal_strength(pre[:, m], cache.scores(test, [m])[:, 0], test.quality[:, m])
            for m, model in enumerate(test.models)}
    firsts = Counter(p.chain[0] for p in subsequence.points)
    return {"router_variant": variant, "per_model": rows, "first_rungs": firsts.most_common(),
            "cheapest": test.by_cost().models[0]}


def _routed(ev: Evaluation, lambdas: np.ndarray, train: QueryTable,
            test: QueryTable) -> dict:
    """Per λ: held-out train objective (train folds) and test objective of routed, the best
    subsequence and the router; routed's choice (start price, plans, start shares). Over
    λ > 0: at how many routed's train / test objective is ≥ both rivals', and routing set."""
    test_obj = {(p.family, p.lam): p.quality - p.lam * p.cost for p in ev.points}
    rows = []
    for lam in map(float, lambdas):
        routed, threshold = ev.policies[("routed", lam)], ev.policies[("threshold", lam)]
        rows.append({
            "lambda": lam,
            "train": {"routed": routed.train_objective_, "threshold": threshold.train_objective_,
                      "router": ev.policies[("router", lam)].choice_["objective"]},
            "test": {f: test_obj[(f, lam)] for f in ("routed", "threshold", "router")},
            "start_price": routed.start_price_,
            "plans": {s: " → ".join(p.chain_) for s, p in routed.plans_.items()},
            "train_starts": _shares(routed.starts(train), train),
            "test_starts": _shares(routed.starts(test), test),
        })
    positive = [x for x in rows if x["lambda"] > 0]

    def won(x: dict, on: str) -> bool:
        return x[on]["routed"] >= max(x[on]["threshold"], x[on]["router"]) - 1e-12

    return {"per_lambda": rows, "n": len(positive),
            "won_train": sum(won(x, "train") for x in positive),
            "won_test": sum(won(x, "test") for x in positive),
            "routing": sum(x["start_price"] is not None for x in positive)}


def _shares(starts: np.ndarray, table: QueryTable) -> dict[str, float]:
    counts = Counter(table.models[i] for i in starts)
    return {m: c / table.n for m, c in counts.most_common()}


def _plot(fronts: dict[str, Frontier], models: list[dict], test: QueryTable,
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def line(name: str, **style: object) -> None:
        h = fronts[name].summary["hull"]
        ax.plot([v["cost"] for v in h], [v["quality"] for v in h], **style)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in fronts:
        if "→" in name and "refunded" not in name:
            line(name, color="0.6", lw=0.6, alpha=0.45, zorder=1)
    line(ENV, color="black", lw=2.6, label="pairwise envelope (36 pairs faint)", zorder=3)
    styles = {FULL: ("tab:brown", "--"), "threshold": ("tab:blue", "-"),
              "router": ("tab:red", "-"), "routed": ("tab:purple", "-"),
              "moa": ("tab:olive", ":"), "auto": ("tab:green", "-."),
              f"{ENV} refunded": ("0.3", ":")}
    for name, (color, ls) in styles.items():
        if name in fronts:
            line(name, color=color, ls=ls, lw=1.5, zorder=4,
                 label=LABEL.get(name, name).replace("`", ""))
    for m in models:
        ax.scatter(m["cost"], m["quality"], color="black", s=18, zorder=5)
        ax.annotate(m["name"], (m["cost"], m["quality"]), fontsize=6, xytext=(3, -8),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per query, USD (test, log scale)")
    ax.set_ylabel("accuracy (test)")
    ax.set_title(f"{path.stem}: seed 003's comparison (fit on train, test n = {test.n})")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
