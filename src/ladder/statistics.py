"""Paired significance tests, effect sizes and the seed-001 comparison table (theory.md §7).

A policy and a baseline are replayed on the same test queries, so every comparison is
paired by query: the tests and d_z are on per-query differences, and the bootstrap
intervals resample queries once for the whole table (ladder.evaluate.intervals), so all
its rows see the same resamples. Signs: a cost difference is baseline − policy (positive
means the policy saves), a quality difference is policy − baseline (positive means it is
better). Holm's step-down correction runs over every p-value the table reports, so a p
shown as significant survives all the tests the table makes, not only its own column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ladder.evaluate.experiment import Evaluation, PolicyPoint
from ladder.evaluate.intervals import Resamples, mean_interval, paired_mean_interval
from ladder.policies.base import Outcome, best_model
from ladder.policies.baselines import RandomMix
from ladder.report import fmt, markdown_table
from ladder.runlog.table import QueryTable

__all__ = [
    "Comparison",
    "StatsTable",
    "TestResult",
    "choose_point",
    "cohens_dz",
    "compare",
    "compare_all",
    "holm",
    "latex_escape",
    "one_model_run",
    "paired_t",
    "quality_preserved",
    "seed001_table",
    "to_latex",
    "to_markdown",
    "wilcoxon",
]

LEVEL = 0.95
RESAMPLES = 2000
TESTS = ("cost_t", "cost_w", "quality_t", "quality_w")  # the p-values of one comparison


@dataclass(frozen=True)
class TestResult:
    """A test's statistic (None where undefined) and p-value; `note` says why when the
    data are degenerate, so a p = 1 is never mistaken for a computed one."""

    statistic: float | None
    p: float
    note: str = ""


NO_DIFFERENCE = TestResult(None, 1.0, "all differences are zero: p = 1 by convention")


def _differences(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"paired samples must be 1-D, of equal length ≥ 2; got {x.shape}, "
                         f"{y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired samples must be finite")
    return x - y


def _constant(d: np.ndarray) -> bool:
    """No spread beyond rounding: (a + c) − a differs from c in the last bits."""
    return bool(np.ptp(d) <= 1e-12 * np.abs(d).max())


def _degenerate(d: np.ndarray) -> TestResult | None:
    """The cases scipy answers with NaN or a warning: no difference, or a constant one."""
    if not d.any():
        return NO_DIFFERENCE
    if _constant(d):
        return TestResult(math.copysign(math.inf, d[0]), 0.0,
                          "constant non-zero difference: t is infinite, p = 0")
    return None


def paired_t(a: ArrayLike, b: ArrayLike) -> TestResult:
    """Two-sided paired t-test of mean(a − b) = 0 (scipy.stats.ttest_rel)."""
    d = _differences(a, b)
    special = _degenerate(d)
    if special is not None:
        return special
    result = stats.ttest_rel(a, b)
    return TestResult(float(result.statistic), float(result.pvalue))


def wilcoxon(a: ArrayLike, b: ArrayLike) -> TestResult:
    """Two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero differences dropped,
    its default); p = 1 with a note when every difference is zero."""
    d = _differences(a, b)
    if not d.any():
        return NO_DIFFERENCE
    result = stats.wilcoxon(d)
    return TestResult(float(result.statistic), float(result.pvalue))


def cohens_dz(a: ArrayLike, b: ArrayLike) -> float | None:
    """Cohen's d_z = mean(a − b) / sd(a − b) (ddof 1); None when sd is 0 (undefined)."""
    d = _differences(a, b)
    if not d.any() or _constant(d):
        return None
    return float(d.mean()) / float(d.std(ddof=1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order: the i-th smallest of m is
    multiplied by m − i + 1, made non-decreasing in that order and capped at 1.
    Controls the family-wise error over all of them without assuming independence."""
    p = np.asarray(pvalues, np.float64)
    if p.ndim != 1 or ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("holm: p-values must be a 1-D sequence in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = scaled
    return [float(x) for x in adjusted]


def quality_preserved(difference: Mapping[str, float | None], margin: float) -> bool | None:
    """Whether quality is within `margin` (quality units: 0.01 is one accuracy point) of the
    baseline: the lower end of the interval of policy − baseline is ≥ −margin. None when
    the interval is undefined. A point estimate alone never preserves anything."""
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0, got {margin}")
    low = difference.get("low")
    return None if low is None else bool(low >= -margin)


@dataclass(frozen=True)
class Comparison:
    """One row: the policy against one baseline on the same test queries."""

    baseline: str
    n: int
    our_cost: float
    base_cost: float
    our_quality: float
    base_quality: float
    speedup: dict  # base cost / our cost: {"point", "low", "high"}
    quality_diff: dict  # our quality − base quality: {"point", "low", "high"}
    tests: dict[str, TestResult]  # TESTS
    cost_dz: float | None  # on base − our per-query cost
    quality_dz: float | None  # on our − base per-query quality
    adjusted: dict[str, float] = field(default_factory=dict)  # Holm over the whole table


def compare(baseline: str, ours: Outcome, base: Outcome, resamples: Resamples,
            level: float = LEVEL) -> Comparison:
    """Paired tests, d_z and bootstrap intervals of `ours` against `base` (theory.md §7)."""
    return Comparison(
        baseline=baseline, n=len(ours.cost),
        our_cost=ours.mean_cost, base_cost=base.mean_cost,
        our_quality=ours.mean_quality, base_quality=base.mean_quality,
        speedup=paired_mean_interval(resamples, base.cost, ours.cost, ratio=True, level=level),
        quality_diff=paired_mean_interval(resamples, ours.quality, base.quality, level=level),
        tests={"cost_t": paired_t(base.cost, ours.cost),
               "cost_w": wilcoxon(base.cost, ours.cost),
               "quality_t": paired_t(ours.quality, base.quality),
               "quality_w": wilcoxon(ours.quality, base.quality)},
        cost_dz=cohens_dz(base.cost, ours.cost),
        quality_dz=cohens_dz(ours.quality, base.quality),
    )


@dataclass(frozen=True)
class StatsTable:
    """A policy against several baselines, Holm-adjusted over every p-value shown."""

    policy: str
    comparisons: list[Comparison]
    level: float
    resamples: int
    first_stop: dict | None = None  # share of queries answered by the first model run
    notes: list[str] = field(default_factory=list)
    margin: float = 0.01  # the "quality preserved" margin the renderings judge

    def row(self, baseline: str) -> Comparison:
        return next(c for c in self.comparisons if c.baseline == baseline)


def compare_all(policy: str, ours: Outcome, baselines: Mapping[str, Outcome], *,
                b: int = RESAMPLES, seed: int = 0, level: float = LEVEL,
                stopped_first: ArrayLike | None = None, margin: float = 0.01) -> StatsTable:
    """Every baseline against `ours` on one set of b seeded resamples, then Holm.

    stopped_first: per query, True where the policy stopped at the first model it ran;
    the table then reports that share with its interval (seed 001's stage distribution).
    """
    if b < 2000:
        raise ValueError(f"compare_all: theory.md §7 asks for ≥ 2,000 resamples, got {b}")
    resamples = Resamples.draw(len(ours.cost), b, seed)
    rows = [compare(name, ours, base, resamples, level) for name, base in baselines.items()]
    adjusted = holm([r.tests[t].p for r in rows for t in TESTS])
    for i, r in enumerate(rows):
        r.adjusted.update(zip(TESTS, adjusted[i * len(TESTS):(i + 1) * len(TESTS)],
                              strict=True))
    notes = sorted({f"{r.baseline}, {t}: {r.tests[t].note}" for r in rows for t in TESTS
                    if r.tests[t].note})
    first = None if stopped_first is None else mean_interval(
        resamples, np.asarray(stopped_first, np.float64), level)
    return StatsTable(policy, rows, level, b, first, notes, margin)


def choose_point(evaluation: Evaluation, family: str = "auto",
                 fraction: float = 0.95) -> tuple[int, str]:
    """Index into evaluation.points of the operating point, chosen on train only.

    The cheapest of the family's λ points whose cross-fitted held-out training quality
    (in-sample when a policy keeps none) reaches `fraction` × the best single model's
    training quality; the most accurate one when none does. Returns (index, how).
    """
    fixed = evaluation.family_points("fixed")
    if not fixed:
        raise ValueError("choose_point: the evaluation needs the 'fixed' family")
    best = fixed[best_model([p.train_quality for p in fixed], [p.train_cost for p in fixed])]
    target = fraction * best.train_quality
    candidates = []
    for i, p in enumerate(evaluation.points):
        if p.family != family:
            continue
        held = getattr(evaluation.policies.get((family, p.lam)), "held_out_", None)
        cost, quality = ((held.mean_cost, held.mean_quality) if held is not None
                         else (p.train_cost, p.train_quality))
        candidates.append((cost, quality, p.lam, i, held is not None))
    if not candidates:
        raise ValueError(f"choose_point: no '{family}' points in the evaluation")
    reaching = [c for c in candidates if c[1] >= target]
    cost, quality, lam, index, held = (min(reaching, key=lambda c: (c[0], -c[2])) if reaching
                                       else max(candidates, key=lambda c: (c[1], -c[0])))
    source = "held-out (5-fold) train" if held else "in-sample train"
    how = (f"{family} at λ = {lam:.4g}: the cheapest whose {source} quality {quality:.4f} "
           f"reaches {fraction:.0%} of {best.chain[0]}'s train quality {best.train_quality:.4f}"
           if reaching else f"{family} at λ = {lam:.4g}: none reaches {fraction:.0%} of the "
           f"best model's train quality; the most accurate on train ({quality:.4f})")
    return index, how


def seed001_table(evaluation: Evaluation, train: QueryTable, test: QueryTable, *,
                  family: str = "auto", fraction: float = 0.95, b: int = RESAMPLES,
                  seed: int = 0, level: float = LEVEL,
                  margin: float = 0.01) -> tuple[StatsTable, PolicyPoint]:
    """Seed 001's §8.1 table, honestly: the train-chosen point against every single model
    (Fixed-each) and a Random mix cost-matched on train (RandomMix at the point's
    training cost), all replayed on test. Returns the table and the chosen point."""
    index, how = choose_point(evaluation, family, fraction)
    point, ours = evaluation.points[index], evaluation.outcomes[index]
    baselines = {f"Fixed {p.chain[0]}": o for p, o in zip(evaluation.points,
                                                           evaluation.outcomes, strict=True)
                 if p.family == "fixed"}
    baselines["Random (cost-matched)"] = (RandomMix(target_cost=point.train_cost)
                                          .fit(train).replay(test))
    table = compare_all(f"{family} λ={point.lam:.4g}", ours, baselines, b=b, seed=seed,
                        level=level, stopped_first=one_model_run(test, ours), margin=margin)
    table.notes.insert(0, how)
    return table, point


def one_model_run(table: QueryTable, outcome: Outcome) -> np.ndarray:
    """Per query, whether the policy ran a single model: it paid only the last model's
    cost (a cascade that stops at its first stage, a router, a fixed model). Models that
    cost nothing make this ambiguous; the Zellinger logs have none."""
    paid_last = table.cost[np.arange(table.n), outcome.last_run]
    return np.isclose(outcome.cost, paid_last, rtol=1e-9, atol=0.0)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _range(ci: Mapping[str, float | None], spec: str, suffix: str = "") -> str:
    """'point [low, high]' with signs shown as − (U+2212) for negative numbers."""
    def one(x: float | None) -> str:
        return "—" if x is None else format(x, spec).replace("-", "−") + suffix
    return f"{one(ci['point'])} [{one(ci['low'])}, {one(ci['high'])}]"


def _header(table: StatsTable) -> list[str]:
    return ["baseline", "our cost", "base cost", "speedup [CI]", "Δ quality [CI]",
            f"within {100 * table.margin:g} pt", "p cost t / W", "p quality t / W",
            "d_z cost", "d_z quality"]


YES_NO = {True: "yes", False: "no", None: "—"}


def _cells(table: StatsTable) -> list[list[str]]:
    """The rows as text (Unicode signs); p-values are Holm-adjusted, d_z signed."""
    rows = []
    for c in table.comparisons:
        a = c.adjusted
        rows.append([
            c.baseline, fmt(c.our_cost, "cost"), fmt(c.base_cost, "cost"),
            _range(c.speedup, ".2f", "×"), _range(c.quality_diff, "+.3f"),
            YES_NO[quality_preserved(c.quality_diff, table.margin)],
            f"{_p(a['cost_t'])} / {_p(a['cost_w'])}",
            f"{_p(a['quality_t'])} / {_p(a['quality_w'])}",
            fmt(c.cost_dz, "ratio").replace("-", "−"),
            fmt(c.quality_dz, "ratio").replace("-", "−"),
        ])
    return rows


def to_markdown(table: StatsTable) -> str:
    """The table as Markdown, with a line on what it shows."""
    caption = (f"{table.policy} against each baseline on the test queries: {table.level:.0%} "
               f"paired bootstrap intervals ({table.resamples:,} resamples), p-values "
               "Holm-adjusted over every test in the table, d_z on per-query differences "
               f"(cost: base − ours; quality: ours − base). 'within {100 * table.margin:g} pt': "
               f"the lower end of Δ quality's interval is ≥ −{table.margin:g}.")
    return caption + "\n\n" + markdown_table(_header(table), _cells(table))


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
          "×": r"$\times$", "−": r"$-$", "—": "---", "Δ": r"$\Delta$", "λ": r"$\lambda$",
          "≥": r"$\geq$", "→": r"$\to$"}


def latex_escape(text: str) -> str:
    """Text safe in a plain LaTeX tabular: special characters escaped, the Unicode signs
    the tables use written as math, so it compiles without extra packages."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: StatsTable) -> str:
    """The table as a plain LaTeX tabular (no booktabs), every cell escaped."""
    names = _header(table)
    header = " & ".join(latex_escape(h) for h in names) + r" \\"
    body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in _cells(table)]
    return "\n".join([
        f"% {latex_escape(table.policy)}: {table.level:.0%} bootstrap intervals "
        f"({table.resamples} resamples); p-values Holm-adjusted over the table",
        r"\begin{tabular}{" + "l" + "r" * (len(names) - 1) + "}", r"\hline", header,
        r"\hline", *body, r"\hline", r"\end{tabular}", ""])
