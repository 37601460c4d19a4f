"""Operating points with a guarantee: Learn-then-Test (theory.md §10).

A deployer asks for "at least 98% of the best model's accuracy" or "at most B per
query", not for a λ. The candidate policies (a λ sweep, say) are put on their
cost-quality hull, optionally with a grid of mixtures between hull neighbours, and
walked in a fixed order with one level-δ test each (fixed-sequence testing, Angelopoulos
et al. 2021, "Learn then Test"). Because the walk stops at the first hypothesis it cannot
reject, the chance that the deployed point breaks the promise is at most δ, over the draw
of the calibration queries, with no multiplicity correction.

Soundness needs calibration queries the policies were not fitted on (a held-out part of
train, or cross-fitted predictions) and an order fixed without them. Pass ``guide``
(per-candidate mean cost and quality from the fitting data) to fix the hull and order
independently; without it they come from the calibration means, which selects on the
same data (slightly optimistic for small n; the simulations in tests stay within δ).

When the calibration labels are mostly a judge's, with a person's on a random few
queries, pass ``audit`` (`ladder.policies.ppi.HumanAudit`): each quality hypothesis must
then also pass a prediction-powered test that corrects the judge's bias on the
human-labelled queries, instead of the judge's labels alone being read as the truth.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.special import xlogy

from ladder.policies.base import Outcome
from ladder.policies.ppi import HumanAudit, ppi_p_value

__all__ = [
    "Candidates",
    "OperatingPoint",
    "binomial_p_value",
    "choose_by_budget",
    "choose_by_quality",
    "fixed_sequence",
    "hb_p_value",
    "hb_risk_p_value",
    "t_cost_p_value",
    "wsr_p_value",
]

Point = tuple[int, int, float]  # (a, b, w): run candidate a w.p. 1 − w, candidate b w.p. w


# --- p-values -----------------------------------------------------------------------------


def hb_risk_p_value(mean_loss: float, n: int, alpha: float) -> float:
    """Hoeffding–Bentkus p-value for H: E[L] > alpha, losses L in [0, 1] (Bates et al. 2021).

    p = min(exp(−n·h(R̂ ∧ α, α)), e·P(Binom(n, α) ≤ ⌈n·R̂⌉)) with R̂ the mean of n losses
    and h(a, b) = a·log(a/b) + (1 − a)·log((1 − a)/(1 − b)). Valid for any distribution
    on [0, 1]; the Bentkus term makes it nearly exact when losses are 0/1.
    """
    if n < 1:
        raise ValueError(f"hb_risk_p_value: need n ≥ 1, got {n}")
    if alpha >= 1.0:
        return 0.0  # a [0, 1] loss cannot have mean above 1: H is empty
    if alpha <= 0.0:
        return 1.0  # zero risk can never be certified from a sample
    r = min(max(float(mean_loss), 0.0), 1.0)
    a = min(r, alpha)
    h = xlogy(a, a / alpha) + xlogy(1.0 - a, (1.0 - a) / (1.0 - alpha))
    hoeffding = math.exp(-n * h)
    k = math.ceil(n * r - 1e-9)  # a mean of k/n in floating point must not round up to k + 1
    bentkus = math.e * stats.binom.cdf(k, n, alpha)
    return float(min(1.0, hoeffding, bentkus))


def hb_p_value(values: ArrayLike, target: float) -> float:
    """Hoeffding–Bentkus p-value for H: E[v] < target, values v in [0, 1].

    A lower bound on a mean quality is an upper bound on the loss 1 − v at risk
    level 1 − target, which is the form of :func:`hb_risk_p_value`.
    """
    v = _unit(values, "hb_p_value")
    return hb_risk_p_value(1.0 - float(v.mean()), v.size, 1.0 - float(target))


def wsr_p_value(values: ArrayLike, target: float, delta: float) -> float:
    """Betting p-value of Waudby-Smith & Ramdas for H: E[v] < target, values in [0, 1].

    The LTT paper's WSR p-value on the loss L = 1 − v at level α = 1 − target: wealth
    K_i = Π_{l ≤ i} (1 − ν_l (L_l − α)), bets ν_l = min(1, √(2 log(1/δ) / (n σ̂²_{l−1}))) from
    the running variance, p = 1 / max_i K_i (Ville's inequality). It adapts to the variance,
    which HB cannot: a paired difference that is nearly constant is certified at n where HB
    is not. It reads the values in a fixed seeded order, so a sorted log is safe.
    """
    v = _unit(values, "wsr_p_value")
    alpha, n = 1.0 - float(target), v.size
    if alpha >= 1.0:
        return 0.0
    loss = 1.0 - v[np.random.default_rng(0).permutation(n)]
    i = np.arange(1, n + 1)
    mu = (0.5 + np.cumsum(loss)) / (1 + i)
    var = (0.25 + np.cumsum((loss - mu) ** 2)) / (1 + i)
    bet = np.minimum(1.0, np.sqrt(2 * math.log(1 / delta) / (n * np.r_[0.25, var[:-1]])))
    with np.errstate(divide="ignore"):
        log_wealth = np.cumsum(np.log1p(-bet * (loss - alpha)))
    return float(min(1.0, math.exp(-max(0.0, float(log_wealth.max())))))


def binomial_p_value(values: ArrayLike, target: float) -> float:
    """Exact binomial p-value for H: P(v = 1) < target, values v in {0, 1}.

    P(Binom(n, target) ≥ k) for k successes; the sup over H is at the boundary, so
    this is exact. Only valid for 0/1 qualities, hence not for mixtures or differences.
    """
    v = _unit(values, "binomial_p_value")
    if not np.all((v == 0.0) | (v == 1.0)):
        raise ValueError("binomial_p_value: values must be 0 or 1")
    if target <= 0.0:
        return 0.0
    if target > 1.0:
        return 1.0
    return float(stats.binom.sf(int(v.sum()) - 1, v.size, float(target)))


def t_cost_p_value(costs: ArrayLike, budget: float) -> float:
    """One-sided t p-value for H: E[cost] > budget; asymptotic, for costs with no known bound."""
    c = np.asarray(costs, dtype=np.float64).ravel()
    if c.size < 2:
        raise ValueError("t_cost_p_value: need at least two costs")
    sd = float(c.std(ddof=1))
    if sd == 0.0:
        return 0.0 if c[0] <= budget else 1.0
    t = (float(c.mean()) - budget) / (sd / math.sqrt(c.size))
    return float(stats.t.cdf(t, c.size - 1))


def fixed_sequence(p_values: ArrayLike, delta: float) -> int:
    """How many hypotheses fixed-sequence testing rejects: the leading run of p ≤ δ.

    Each is tested at level δ; the first true null stops the walk with probability
    ≥ 1 − δ, so the family-wise error is at most δ.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    above = np.flatnonzero(~(p <= delta))  # NaN counts as not rejected
    return int(above[0]) if above.size else int(p.size)


def _unit(values: ArrayLike, where: str) -> NDArray[np.float64]:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{where}: no values")
    if not np.all((v >= 0.0) & (v <= 1.0)):
        raise ValueError(f"{where}: values must lie in [0, 1]")
    return v


# --- candidates and the ladder of points --------------------------------------------------


@dataclass(frozen=True, eq=False)
class Candidates:
    """Per-query quality in [0, 1] and cost ≥ 0 of P candidate policies: arrays n × P."""

    quality: NDArray[np.float64]
    cost: NDArray[np.float64]

    def __post_init__(self) -> None:
        q = np.asarray(self.quality, dtype=np.float64)
        c = np.asarray(self.cost, dtype=np.float64)
        if q.ndim != 2 or q.shape != c.shape or q.size == 0:
            raise ValueError(
                f"Candidates: need equal non-empty n × P arrays, got {q.shape}, {c.shape}"
            )
        if not np.all((q >= 0.0) & (q <= 1.0)):
            raise ValueError("Candidates: quality must lie in [0, 1]")
        if not np.all(np.isfinite(c) & (c >= 0.0)):
            raise ValueError("Candidates: cost must be finite and ≥ 0")
        object.__setattr__(self, "quality", q)
        object.__setattr__(self, "cost", c)

    @classmethod
    def from_outcomes(cls, outcomes: Sequence[Outcome]) -> Candidates:
        """One column per replayed policy (all on the same calibration queries)."""
        return cls(
            np.column_stack([o.quality for o in outcomes]),
            np.column_stack([o.cost for o in outcomes]),
        )

    @property
    def n(self) -> int:
        return int(self.quality.shape[0])

    def column(self, point: Point, which: Literal["quality", "cost"]) -> NDArray[np.float64]:
        """Per-query expected value of a point: (1 − w)·x_a + w·x_b."""
        return _mix(self.quality if which == "quality" else self.cost, point)


def _mix(x: NDArray[np.float64], point: Point) -> NDArray[np.float64]:
    """Per-query expected value of a point from per-candidate columns x (n × P)."""
    a, b, w = point
    return x[:, a] if w == 0.0 else (1.0 - w) * x[:, a] + w * x[:, b]


def _hull(costs: NDArray[np.float64], quals: NDArray[np.float64]) -> list[int]:
    """Indices of the non-decreasing upper concave hull, cheapest first (as in §2)."""
    order = np.lexsort((np.arange(costs.size), -quals, costs))
    order = order[np.r_[True, np.diff(costs[order]) != 0]]  # best point at each cost
    order = order[: int(np.argmax(quals[order])) + 1]  # stop at the cheapest best point
    keep: list[int] = []
    for k in order:
        while len(keep) >= 2:
            o, a = keep[-2], keep[-1]
            cross = (costs[a] - costs[o]) * (quals[k] - quals[o]) - (quals[a] - quals[o]) * (
                costs[k] - costs[o]
            )
            if cross < 0:
                break
            keep.pop()
        keep.append(int(k))
    return keep


def _ladder(
    cands: Candidates, guide: tuple[ArrayLike, ArrayLike] | None, mixtures: float | None
) -> list[Point]:
    """Hull vertices and the mixtures between neighbours, cheapest first."""
    if guide is None:
        costs, quals = cands.cost.mean(axis=0), cands.quality.mean(axis=0)
    else:
        costs, quals = (np.asarray(g, dtype=np.float64).ravel() for g in guide)
        if costs.size != cands.quality.shape[1] or quals.size != costs.size:
            raise ValueError("guide: need one mean cost and one mean quality per candidate")
    vertices = _hull(costs, quals)
    weights: list[float] = []
    if mixtures is not None:
        if not 0.0 < mixtures < 1.0:
            raise ValueError(f"mixtures: grid step must lie in (0, 1), got {mixtures}")
        steps = round(1.0 / mixtures)
        weights = [float(w) for w in np.linspace(0.0, 1.0, steps + 1)[1:-1]]
    points: list[Point] = []
    for a, b in itertools.pairwise(vertices):
        points.append((a, a, 0.0))
        points.extend((a, b, w) for w in weights)
    points.append((vertices[-1], vertices[-1], 0.0))
    return points


# --- the result and the two modes ---------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """The chosen point, the promise it carries, and the tests behind it.

    Deploy: run candidate ``index`` with probability 1 − ``weight`` and ``mix_index``
    with probability ``weight`` (a vertex has mix_index == index, weight 0). When
    ``fallback`` is True nothing was certified: the point is the dearest (quality mode)
    or cheapest (budget mode) on the ladder, and the promise does not hold (in relative
    mode the dearest point is the reference itself when the reference is a candidate).
    """

    mode: Literal["quality", "budget"]
    level: float  # absolute target quality, target fraction (relative), or budget
    relative: bool
    delta: float
    n: int
    index: int
    mix_index: int
    weight: float
    quality: float  # calibration mean of the chosen point
    cost: float
    p_value: float
    fallback: bool
    ladder: tuple[Point, ...]  # points in test order
    p_values: tuple[float, ...]  # same order; only the first `rejected` + 1 were tested
    methods: tuple[str, ...]
    rejected: int
    reference_quality: float | None = None  # relative mode: best reference's calibration mean
    human_labels: int = 0  # queries a person labelled that corrected a judge's labels (PPI)

    @property
    def promise(self) -> str:
        """The guarantee in words for a report, or the plain statement that there is none."""
        if self.mode == "budget":
            what = f"mean cost ≤ {self.level:g}"
        else:
            best = " × the best reference's" if self.relative else ""
            what = f"mean quality ≥ {self.level:g}{best}"
        if self.fallback:
            return f"not certified: no point passed '{what}' at δ = {self.delta:g}"
        return f"{what}, with probability ≥ {1 - self.delta:g} over the calibration queries"

    def realised(self, test: Candidates) -> tuple[float, float]:
        """Mean quality and cost the chosen point gets on other data (the test split)."""
        point = (self.index, self.mix_index, self.weight)
        return float(test.column(point, "quality").mean()), float(test.column(point, "cost").mean())


def _choose(
    mode: Literal["quality", "budget"],
    cands: Candidates,
    order: list[Point],
    tests: list[tuple[float, str]],
    level: float,
    relative: bool,
    delta: float,
    reference_quality: float | None = None,
    human_labels: int = 0,
) -> OperatingPoint:
    p_values = tuple(p for p, _ in tests)
    rejected = fixed_sequence(p_values, delta)
    at = rejected - 1 if rejected else 0
    point = order[at]
    return OperatingPoint(
        mode=mode,
        level=level,
        relative=relative,
        delta=delta,
        n=cands.n,
        index=point[0],
        mix_index=point[1],
        weight=point[2],
        quality=float(cands.column(point, "quality").mean()),
        cost=float(cands.column(point, "cost").mean()),
        p_value=p_values[at],
        fallback=rejected == 0,
        ladder=tuple(order),
        p_values=p_values,
        methods=tuple(m for _, m in tests),
        rejected=rejected,
        reference_quality=reference_quality,
        human_labels=human_labels,
    )


def _scores(q: NDArray[np.float64], ref: NDArray[np.float64] | None,
            target: float) -> tuple[NDArray[np.float64], float]:
    """Per-query scores in [0, 1] (n × R, one column per reference) and the level their
    mean must reach: q itself against the target (absolute), or the rescaled paired
    difference (q − f·q_r + f)/(1 + f) against f/(1 + f) (relative, target fraction f)."""
    if ref is None:
        return q[:, None], target
    return (q[:, None] - target * ref + target) / (1.0 + target), target / (1.0 + target)


def _bounded(values: NDArray[np.float64], target: float, delta: float, method: str) -> float:
    """p-value for H: E[v] < target, v in [0, 1], by the chosen concentration test."""
    return hb_p_value(values, target) if method == "hb" else wsr_p_value(values, target, delta)


def choose_by_quality(
    candidates: Candidates,
    target: float,
    delta: float = 0.1,
    *,
    reference: ArrayLike | None = None,
    mixtures: float | None = 0.1,
    method: Literal["wsr", "hb"] = "wsr",
    guide: tuple[ArrayLike, ArrayLike] | None = None,
    audit: HumanAudit | None = None,
) -> OperatingPoint:
    """Cheapest point whose mean quality is ≥ target, with probability ≥ 1 − δ.

    Absolute (reference None): H_j: E[q_j] < target. A 0/1 column (a vertex with exact-match
    quality) gets the exact binomial test; anything else (mixtures, graded quality) the
    bounded test ``method``: "wsr" (default, variance-adaptive) or "hb" (Hoeffding–Bentkus).
    Relative (reference = per-query quality of the reference model(s), n or n × R):
    ``target`` is a fraction f and the promise is E[q_j] ≥ f·max_r E[q_r]. The reference's
    own quality is estimated on the same queries, so the test is on the paired difference
    d = q_j − f·q_r ∈ [−f, 1], H: E[d] < 0, rescaled to (d + f)/(1 + f) ∈ [0, 1] against
    f/(1 + f); never binomial. With several references (all single models, since which
    is best is itself estimated) H_j holds if it holds for any r, so p_j = max_r p_jr
    (intersection-union): no reference is picked on the calibration data.
    With ``audit`` each point must also pass the prediction-powered test of the same
    scores: the judge's view of them on every calibration query, corrected by their truth
    on the human-labelled ones (asymptotic, `ladder.policies.ppi`). By default the
    correction only widens (p = the larger of the two p-values, method "…+ppi"); with
    ``audit.widen`` False the prediction-powered p-value alone decides ("ppi", "ppi-paired").
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"choose_by_quality: delta must lie in (0, 1), got {delta}")
    order = _ladder(candidates, guide, mixtures)[::-1]  # dearest first
    ref: NDArray[np.float64] | None = None
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64).reshape(candidates.n, -1)
        _unit(ref, "choose_by_quality reference")
        if not target > 0.0:
            raise ValueError(f"choose_by_quality: target fraction must be > 0, got {target}")
    paired = "-paired" if ref is not None else ""
    tests: list[tuple[float, str]] = []
    for point in order:
        q = candidates.column(point, "quality")
        z, level = _scores(q, ref, target)
        if ref is None and np.all((q == 0.0) | (q == 1.0)):
            test = binomial_p_value(q, target), "binomial"
        else:
            test = (max(_bounded(z[:, r], level, delta, method) for r in range(z.shape[1])),
                    f"{method}{paired}")
        if audit is not None:
            view, _ = _scores(_mix(audit.proxy, point),
                              None if ref is None else audit.reference_proxy, target)
            truth, _ = _scores(_mix(audit.truth, point),
                               None if ref is None else audit.reference_truth, target)
            unlabelled = np.delete(view, audit.rows, axis=0)
            p = max(ppi_p_value(unlabelled[:, r], view[audit.rows, r], truth[:, r], level)
                    for r in range(z.shape[1]))
            test = (max(p, test[0]), f"{test[1]}+ppi") if audit.widen else (p, f"ppi{paired}")
        tests.append(test)
    ref_quality = None if ref is None else float(ref.mean(axis=0).max())
    return _choose("quality", candidates, order, tests, target, ref is not None, delta, ref_quality,
                   0 if audit is None else audit.n)


def choose_by_budget(
    candidates: Candidates,
    budget: float,
    delta: float = 0.1,
    *,
    mixtures: float | None = 0.1,
    cost_bound: float | None = None,
    method: Literal["wsr", "hb", "t"] = "wsr",
    guide: tuple[ArrayLike, ArrayLike] | None = None,
) -> OperatingPoint:
    """Most accurate point whose mean cost is ≤ budget, with probability ≥ 1 − δ.

    H_j: E[c_j] > budget, walked from the cheapest point up; the last point reached is
    deployed. "wsr" / "hb": the bounded tests on c / M, assuming every per-query cost lies
    in [0, M]: M = ``cost_bound`` if given, else the largest cost observed on calibration
    (an assumption, slightly optimistic: a dearer query unseen there would break it).
    "t": one-sided t-test, no bound needed but only asymptotically valid.
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"choose_by_budget: delta must lie in (0, 1), got {delta}")
    order = _ladder(candidates, guide, mixtures)  # cheapest first
    bound = float(candidates.cost.max()) if cost_bound is None else float(cost_bound)
    if bound < candidates.cost.max():
        raise ValueError(
            f"choose_by_budget: a cost {candidates.cost.max()} exceeds cost_bound {bound}"
        )
    tests: list[tuple[float, str]] = []
    for point in order:
        c = candidates.column(point, "cost")
        if method == "t":
            p = t_cost_p_value(c, budget)
        elif bound <= 0.0:
            p = 0.0 if budget >= 0.0 else 1.0  # every cost is 0
        else:  # E[c] > B  ⇔  E[1 − c/M] < 1 − B/M
            p = _bounded(1.0 - c / bound, 1.0 - budget / bound, delta, method)
        tests.append((p, method))
    return _choose("budget", candidates, order, tests, budget, False, delta)
