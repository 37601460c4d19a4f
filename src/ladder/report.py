"""A human-readable report of one evaluation: report.md, frontier.png and stage_mix.png.

The JSON document (`to_json`) is for machines; this is what a person reads to decide
whether a cascade beats simply calling the best model, and at what price.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ladder.evaluate.experiment import Evaluation, PolicyPoint
from ladder.policies.base import best_model

__all__ = ["format_summary_table", "markdown_table", "write_report"]

DASH = "—"
STYLE = {  # family -> (colour, marker); families not listed get the default cycle
    "fixed": ("black", "o"),
    "random": ("tab:gray", "x"),
    "oracle": ("tab:red", "*"),
    "threshold": ("tab:blue", "s"),
    "dp": ("tab:orange", "D"),
    "seed_heuristic": ("tab:green", "^"),
    "auto": ("tab:purple", "P"),
    "moa": ("tab:brown", "v"),
    "router": ("tab:olive", "P"),
    "routed": ("tab:pink", "X"),
}
SUMMARY_COLUMNS = [  # (summary key, header, formatter kind)
    ("aiq", "AIQ", "quality"), ("cost_at_98", "cost@98%", "ratio"),
    ("cost_at_100", "cost@100%", "ratio"), ("cpt50", "CPT(50%)", "ratio"),
    ("cpt80", "CPT(80%)", "ratio"), ("apgr", "APGR", "ratio"),
    ("gap_closure_98", "gap closure@98%", "ratio"), ("max_quality", "max quality", "quality"),
]
MIX_SHOWN_ALL = 10  # stage-mix bars: every point of a family this small, else hull vertices


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float | np.floating) and math.isnan(x))


def fmt(x: object, kind: str = "ratio") -> str:
    """Costs in scientific notation, qualities to 4 decimals, ratios to 3; None/NaN as —."""
    if _missing(x):
        return DASH
    spec = {"cost": ".2e", "quality": ".4f", "ratio": ".3f", "lambda": ".3g"}[kind]
    return format(float(x), spec)  # type: ignore[arg-type]


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _best_model(evaluation: Evaluation) -> dict:
    """The most accurate single model on test (ties to the cheaper), as `summarise` picks it."""
    models = evaluation.models
    return models[best_model([m["quality"] for m in models], [m["cost"] for m in models])]


def _vertex_point(evaluation: Evaluation, family: str, vertex: dict) -> PolicyPoint | None:
    """The policy behind a hull vertex: same family and λ, closest (cost, quality).

    λ alone is not unique (every fixed model has λ = 0), so the test point decides.
    """
    same = [p for p in evaluation.family_points(family) if p.lam == vertex["lambda"]]
    same = same or evaluation.family_points(family)
    if not same:
        return None
    return min(same, key=lambda p: abs(p.cost - vertex["cost"])
               + abs(p.quality - vertex["quality"]))


def _describe(point: PolicyPoint | None) -> str:
    """A chain as 'a → b'; policies without a chain (oracle, random) by their model shares."""
    if point is None:
        return DASH
    if point.family == "router" and point.choice:  # its quality model and features
        shares = [f"{m} {s:.2f}" for m, s in point.stage_mix.items() if s > 0]
        return f"router {point.choice['variant']}: " + ", ".join(shares)
    if point.family == "routed" and point.choice:  # where it starts, and each start's chain
        start = ("unrouted" if point.choice["start_price"] is None
                 else f"router {point.choice['router']} at {point.choice['start_price']:g}λ")
        chains = "; ".join(" → ".join(c) for c in point.choice["chains"].values())
        return f"{start}: {chains}"
    if point.choice:  # auto: which family and options it chose at this λ
        options = "" if point.choice["kind"] in ("fixed", "routed") else (
            f" α={point.choice['alpha']:g}" + (" vote" if point.choice["vote"] else ""))
        return f"{point.choice['kind']}{options}: " + " → ".join(point.chain)
    if point.chain:
        return " → ".join(point.chain)
    if point.family == "oracle":
        return "per-query oracle"
    shares = [f"{m} {s:.2f}" for m, s in point.stage_mix.items() if s > 0]
    return "mix: " + ", ".join(shares) if shares else DASH


def format_summary_table(evaluation: Evaluation) -> str:
    """The family summary as a markdown table, one row per family."""
    header = ["family"] + [h for _, h, _ in SUMMARY_COLUMNS]
    rows = [[family] + [fmt(s.get(key), kind) for key, _, kind in SUMMARY_COLUMNS]
            for family, s in evaluation.summary.items()]
    return markdown_table(header, rows)


def _mix_line(evaluation: Evaluation, family: str) -> str | None:
    """How to realise cost@98% by randomising between two hull vertices, in words."""
    summary = evaluation.summary[family]
    mix, c98 = summary.get("mix_at_98"), summary.get("cost_at_98")
    if not mix or _missing(c98):
        return None
    target = float(c98) * _best_model(evaluation)["cost"]
    hull = sorted(summary["hull"], key=lambda v: v["cost"])
    j = max([i for i, v in enumerate(hull) if v["cost"] <= target * (1 + 1e-9)], default=0)
    w = float(mix["weight_b"])
    a = _describe(_vertex_point(evaluation, family, hull[j]))
    if w <= 0 or j + 1 >= len(hull):
        return f"- **{family}**: run λ={fmt(mix['lambda_a'], 'lambda')} ({a}) alone"
    b = _describe(_vertex_point(evaluation, family, hull[j + 1]))
    return (f"- **{family}**: λ={fmt(mix['lambda_a'], 'lambda')} ({a}) with probability "
            f"{1 - w:.3f}, λ={fmt(mix['lambda_b'], 'lambda')} ({b}) with probability {w:.3f}")


def _label_models(ax: plt.Axes, models: list[dict]) -> None:
    """Name each single model beside its marker, nudging labels apart vertically."""
    fig = ax.figure
    to_px = ax.transData.transform
    sep = 1.6 * 8 * fig.dpi / 72  # one 8-pt text line in pixels
    placed: list[tuple[float, float]] = []
    x0, x1 = ax.transAxes.transform((0, 0))[0], ax.transAxes.transform((1, 0))[0]
    for m in sorted(models, key=lambda m: m["quality"]):
        x, y = to_px((m["cost"], m["quality"]))
        ty = y
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - x) < 90 and abs(py - ty) < sep:
                ty = py + sep
        placed.append((x, ty))
        right = x > x0 + 0.75 * (x1 - x0)
        ax.annotate(m["name"], (m["cost"], m["quality"]), fontsize=8,
                    xytext=((-6 if right else 6), (ty - y) * 72 / fig.dpi),
                    textcoords="offset points", ha="right" if right else "left", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if ty != y else None)


def _plot_frontier(evaluation: Evaluation, path: Path) -> None:
    """Every family's test points and upper hull, with the single models named."""
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    costs = [p.cost for p in evaluation.points] + [m["cost"] for m in evaluation.models]
    positive = [c for c in costs if c > 0]
    log = len(positive) == len(costs) and max(positive) / min(positive) > 20
    for family, summary in evaluation.summary.items():
        colour, marker = STYLE.get(family, (None, "o"))
        pts = evaluation.family_points(family)
        hull = sorted(summary["hull"], key=lambda v: v["cost"])
        line_style = "--" if family == "oracle" else "-"
        (line,) = ax.plot([v["cost"] for v in hull], [v["quality"] for v in hull], line_style,
                          color=colour, lw=2.2 if family == "oracle" else 1.6, marker=marker,
                          ms=9 if family == "oracle" else 5, label=f"{family} (hull)", zorder=3)
        if family != "fixed":
            ax.scatter([p.cost for p in pts], [p.quality for p in pts], marker=marker,
                       color=line.get_color(), s=70 if family == "oracle" else 22, alpha=0.55,
                       zorder=4 if family == "oracle" else 2)
    best = _best_model(evaluation)
    ax.scatter([m["cost"] for m in evaluation.models], [m["quality"] for m in evaluation.models],
               color="black", marker="o", s=36, zorder=5, label="single models")
    ax.axhline(0.98 * best["quality"], color="0.35", ls=":", lw=1.2,
               label=f"98% of best single model ({best['name']})")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("mean cost per query on test" + (" (log scale)" if log else ""))
    ax.set_ylabel("mean quality on test")
    ax.set_title("Cost-quality frontier (test split); lines are upper concave hulls")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.margins(x=0.08, y=0.05)
    _label_models(ax, evaluation.models)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mix_points(evaluation: Evaluation, family: str) -> list[PolicyPoint]:
    """Points to show as bars: all if few, else the hull vertices; sorted by cost."""
    points = evaluation.family_points(family)
    if len(points) > MIX_SHOWN_ALL:
        points = [p for v in evaluation.summary[family]["hull"]
                  if (p := _vertex_point(evaluation, family, v)) is not None]
    return sorted(points, key=lambda p: (p.cost, -p.lam))


def _plot_stage_mix(evaluation: Evaluation, path: Path) -> None:
    """Stacked bars per λ: where the threshold and dp cascades stop."""
    families = [f for f in ("threshold", "dp", "auto") if evaluation.family_points(f)]
    names = [m["name"] for m in evaluation.models]
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, max(len(families), 1), figsize=(12, 5), dpi=120, squeeze=False)
    used: set[str] = set()
    for ax, family in zip(axes[0], families, strict=False):
        points = _mix_points(evaluation, family)
        x = np.arange(len(points))
        bottom = np.zeros(len(points))
        for name in names:
            share = np.array([p.stage_mix.get(name, 0.0) for p in points])
            if share.any():
                used.add(name)
                ax.bar(x, share, bottom=bottom, color=colours[name], width=0.8)
                bottom += share
        ax.set_xticks(x, [f"λ={fmt(p.lam, 'lambda')}\n{fmt(p.cost, 'cost')}" for p in points],
                      fontsize=7)
        shown = "all points" if len(points) == len(evaluation.family_points(family)) else "hull"
        ax.set_title(f"{family} ({shown}, cheapest first)")
        ax.set_xlabel("λ and mean test cost of the policy", fontsize=8)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of queries whose last model run was …")
    if not families:
        axes[0][0].text(0.5, 0.5, "no threshold or dp policies evaluated", ha="center")
        axes[0][0].set_axis_off()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in names if n in used]
    rows = math.ceil(len(handles) / 5)
    if handles:
        fig.legend(handles, [n for n in names if n in used], loc="lower center",
                   ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * rows, 1, 1))
    fig.savefig(path)
    plt.close(fig)


METRIC_NOTES = """\
- **AIQ**: mean hull quality over the cost range from the cheapest to the dearest single model.
- **cost@98% / cost@100%**: mean cost, as a fraction of the most accurate single model's cost, \
to reach 98% / 100% of its test quality on the family's upper concave hull (points between two \
vertices are reached by randomly mixing the two vertex policies).
- **CPT(p)**: cost (same fraction) at which the hull recovers p of the quality gap between the \
cheapest and the most accurate single model.
- **APGR**: average share of that gap recovered over the cost range cheapest → most accurate model.
- **gap closure@98%**: share of the cost gap between the most accurate model and the oracle that \
the family closes at matched quality, 98% of that model's: (C_best − C_family) / (C_best − \
C_oracle), C_family and C_oracle read off their hulls there (1 = as cheap as the oracle).
- **max quality**: best test quality of any single policy of the family.
- "—": not reached / not defined (shares of the most accurate model's cost are undefined \
when it costs 0)."""


def _shadow_price_section(evaluation: Evaluation) -> list[str]:
    """theory.md §3's check: at the optimum each stage boundary trades quality for cost at
    the same rate λ. Shown for threshold policies on their chains, measured on train."""
    rows = [[fmt(p.lam, "lambda"), " → ".join(p.chain),
             ", ".join(DASH if x is None else f"{x / p.lam:.2f}" for x in p.shadow_prices)]
            for p in evaluation.family_points("threshold") if p.lam > 0 and p.shadow_prices]
    if not rows:
        return []
    return ["## Shadow-price check (threshold, train split)", "",
            "Marginal Δquality/Δcost of escalating the queries nearest each stage's threshold, "
            "divided by λ: 1 means the boundary trades at λ as the optimum requires; "
            f"{DASH} = boundary unused (everyone stops or goes on).", "",
            markdown_table(["λ", "chain", "rate / λ per boundary"], rows), ""]


def _span(ci: dict, key: str) -> str:
    """'point [low, high]' of a bootstrap interval; an unreached end reads 'not reached'."""
    part = ci[key]
    ends = ", ".join("not reached" if x is None else f"{x:.3f}" for x in (part["low"],
                                                                           part["high"]))
    return f"{fmt(part['point'])} [{ends}]"


def interval_section(evaluation: Evaluation) -> list[str]:
    """Bootstrap intervals of each family's headline metrics and the paired differences."""
    families = [(f, s["ci"]) for f, s in evaluation.summary.items() if "ci" in s]
    if not families:
        return []
    level, resamples = families[0][1]["level"], families[0][1]["resamples"]
    rows = [[f, _span(ci, "aiq"), _span(ci, "cost_at_98"),
             fmt(ci["cost_at_98"]["share_reached"]), _span(ci, "cost_at_100")]
            for f, ci in families]
    out = [f"## Intervals ({level:.0%} bootstrap, {resamples} resamples of the test queries)",
           "", "Each family's policies stay as fitted on train; only the test queries are "
           "resampled (paired across families). 'reached' = share of resamples whose hull "
           "reaches 98% of that resample's most accurate model.", "",
           markdown_table(["family", "AIQ", "cost@98%", "reached 98%", "cost@100%"], rows), ""]
    if evaluation.comparisons:
        rows = [[f"{c['a']} − {c['b']}", _span(c, "aiq"), fmt(c["aiq"]["share_positive"]),
                 _span(c, "cost_at_98"), fmt(c["cost_at_98"]["share_both"])]
                for c in evaluation.comparisons]
        out += ["Paired differences (same resamples; the cost@98% difference is over the "
                "resamples where both families reach 98%):", "",
                markdown_table(["comparison", "Δ AIQ", "share Δ AIQ > 0", "Δ cost@98%",
                                "share both reach"], rows), ""]
    return out


def stability_section(evaluation: Evaluation) -> list[str]:
    """How the families fare when refitted on subsamples of train: a fit on ~300 queries
    is noisy, and one fit's frontier can be luck."""
    stable = [(f, st) for f, s in evaluation.summary.items() if (st := s.get("stability"))]
    if not stable:
        return []
    first = stable[0][1]
    rows = [[f, f"{st['reached_98']} / {st['refits']}", fmt(st["median_cost_at_98"]),
             DASH if st["target_98_met"] is None else f"{st['target_98_met']} / {st['refits']}"]
            for f, st in stable]
    return ["## Stability (refits on subsamples of train)", "",
            f"Every family refitted on {first['refits']} seeded {first['subsample']:.0%} "
            "subsamples of the training split, each replayed on the same test split.", "",
            markdown_table(["family", "reach 98%", "median cost@98% (those reaching)",
                            "98% target met on test"], rows), ""]


def target_section(evaluation: Evaluation) -> list[str]:
    """The operating point each family certifies on train for 98% of the best model,
    replayed on test (theory.md §10): what a deployer gets without looking at test."""
    rows = [[f, t["chosen"], fmt(t["train_quality"], "quality"), fmt(t["test_quality"], "quality"),
             fmt(t["test_target"], "quality"), "yes" if t["met"] else "no",
             fmt(t["test_cost_share"]), "no" if t["fallback"] else "yes"]
            for f, s in evaluation.summary.items() if (t := s.get("target_98"))]
    if not rows:
        return []
    delta = next(s["target_98"]["delta"] for s in evaluation.summary.values() if "target_98" in s)
    return ["## Quality target chosen on train (98% of the best model)", "",
            f"Learn-then-Test on the training queries' held-out outcomes, δ = {delta:g}: the "
            "cheapest policy of the family's λ sweep (or a single model) certified to reach "
            "98% of the best model's quality, then replayed on test. Unlike cost@98% (read off "
            "the test hull), this point is fixed before test is seen.", "",
            markdown_table(["family", "chosen on train", "train quality", "test quality",
                            "test target", "met", "test cost / best model's", "certified"],
                           rows), ""]


def write_report(evaluation: Evaluation, directory: Path, title: str = "ladder evaluation") -> Path:
    """Write report.md, frontier.png and stage_mix.png into `directory`; return report.md."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _plot_frontier(evaluation, directory / "frontier.png")
    _plot_stage_mix(evaluation, directory / "stage_mix.png")
    best = _best_model(evaluation)
    out = [
        f"# {title}", "",
        f"- training queries: {evaluation.n_train}",
        f"- test queries: {evaluation.n_test}",
        f"- dropped queries (missing a model): {evaluation.dropped}",
        f"- split: {evaluation.split or DASH}", "",
        "## Single models (test)", "",
        markdown_table(["model", "cost", "quality", "cost / most accurate"],
               [[m["name"] + (" (most accurate)" if m is best else ""), fmt(m["cost"], "cost"),
                 fmt(m["quality"], "quality"),
                 fmt(m["cost"] / best["cost"] if best["cost"] > 0 else None)]
                for m in evaluation.models]), "",
        "## Policy families (test)", "", format_summary_table(evaluation), "", METRIC_NOTES, "",
        *[f"- {note}" for note in evaluation.notes], *([""] if evaluation.notes else []),
    ]
    out += interval_section(evaluation)
    out += stability_section(evaluation)
    out += target_section(evaluation)
    mixes = [line for f in evaluation.summary if (line := _mix_line(evaluation, f))]
    if mixes:
        out += ["Reaching 98% of the most accurate model's quality at cost@98%:", "", *mixes, ""]
    out += ["![cost-quality frontier](frontier.png)", "", "## Hull vertices per family", ""]
    for family, summary in evaluation.summary.items():
        rows = [[fmt(v["lambda"], "lambda"), fmt(v["cost"], "cost"), fmt(v["quality"], "quality"),
                 _describe(_vertex_point(evaluation, family, v))]
                for v in sorted(summary["hull"], key=lambda v: v["cost"])]
        out += [f"### {family}", "", markdown_table(["λ", "cost", "quality", "policy"], rows), ""]
    out += _shadow_price_section(evaluation)
    out += ["## Where the cascades stop", "", "![stage mix](stage_mix.png)", "",
            "## Quality predictors (test, full ladder in cost order)", "",
            markdown_table(["stage", "model", "AUROC", "Brier", "raw-confidence AUROC"],
                   [[str(r["stage"]), r["model"], fmt(r.get("auroc")),
                     fmt(r.get("brier"), "quality"), fmt(r.get("raw_confidence_auroc"))]
                    for r in evaluation.predictors]), ""]
    path = directory / "report.md"
    path.write_text("\n".join(out), encoding="utf-8")
    return path
