"""Cost-quality frontier maths for judging cascade and routing policies.

Each fitted policy, evaluated on the test split, is one (mean cost, mean quality)
point. Policies are compared through the upper concave hull of those points
(theory.md §2): any point on a segment between two hull vertices is reachable by
randomising between the two vertex policies, so the hull, not the raw points, is
what a policy family can deliver. The metrics of theory.md §8 (RouterBench's AIQ,
RouteLLM's CPT and APGR, cost at a fraction of the best model's quality, oracle
gap closure) are all read off that hull, and integrated exactly since it is
piecewise linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Hull",
    "aiq",
    "apgr",
    "cost_at_fraction",
    "cpt",
    "gap_closure",
    "upper_hull",
]

# Slack for "is this quality reached": targets such as 1.0 × best quality are
# computed in floating point and must not miss the vertex they came from.
_QUALITY_ATOL = 1e-12
# The same for costs handed back as fraction × best cost: a few ulps below the vertex the
# fraction was read from are that vertex.
_COST_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class Hull:
    """Vertices of a non-decreasing upper concave hull, sorted by cost.

    ``costs`` strictly increase, ``qualities`` strictly increase and the slopes
    between consecutive vertices do not increase. ``indices[i]`` is the position
    of vertex i in the point set given to :func:`upper_hull`, so a vertex can be
    traced back to the policy that produced it.
    """

    costs: NDArray[np.float64]
    qualities: NDArray[np.float64]
    indices: NDArray[np.intp]

    def __post_init__(self) -> None:
        c, q, i = self.costs, self.qualities, self.indices
        if c.ndim != 1 or c.shape != q.shape or c.shape != i.shape:
            raise ValueError("Hull: costs, qualities and indices must be 1-D of equal length")
        if c.size == 0:
            raise ValueError("Hull: needs at least one vertex")
        if np.any(np.diff(c) <= 0):
            raise ValueError("Hull: vertex costs must be strictly increasing")
        for arr in (c, q, i):
            arr.setflags(write=False)  # frozen means frozen: no in-place edits either

    def __len__(self) -> int:
        return int(self.costs.size)

    def _snap(self, cost: float) -> float:
        """The cost as a float; within rounding below the cheapest vertex, that vertex's."""
        cost = float(cost)
        low = float(self.costs[0])
        return low if low * (1 - _COST_RTOL) <= cost < low else cost

    def quality_at(self, cost: float) -> float:
        """Best quality reachable at mean cost ``cost``.

        Linear between vertices (randomising between the two neighbours), flat
        past the last vertex (spending more can always be declined), NaN below
        the first vertex (no policy in the family is that cheap).
        """
        cost = self._snap(cost)
        if np.isnan(cost) or cost < self.costs[0]:
            return float("nan")
        if cost >= self.costs[-1]:
            return float(self.qualities[-1])
        return float(np.interp(cost, self.costs, self.qualities))

    def cost_at(self, quality: float) -> float | None:
        """Least mean cost at which the hull reaches ``quality``; None if never.

        A quality at or below the first vertex's is reached by the cheapest
        policy, so the answer is then the first vertex's cost.
        """
        quality = float(quality)
        if np.isnan(quality) or quality > self.qualities[-1] + _QUALITY_ATOL:
            return None
        if quality <= self.qualities[0]:
            return float(self.costs[0])
        if quality >= self.qualities[-1]:
            return float(self.costs[-1])
        # Qualities strictly increase along the hull, so the inverse is a function.
        return float(np.interp(quality, self.qualities, self.costs))

    def mixture(self, cost: float) -> tuple[int, int, float]:
        """Randomisation that realises the hull at ``cost``.

        Returns input indices (a, b) and weight w: run policy a with probability
        1 − w and policy b with probability w; the mixture's mean cost is
        ``cost`` and its mean quality ``quality_at(cost)``. At a vertex, a == b
        and w == 0. Past the last vertex the last vertex alone is returned (it
        costs less than ``cost`` and no mixture does better).
        """
        cost = self._snap(cost)
        if np.isnan(cost) or cost < self.costs[0]:
            raise ValueError(
                f"mixture: cost {cost} is below the cheapest hull vertex ({self.costs[0]})"
            )
        if cost >= self.costs[-1]:
            last = int(self.indices[-1])
            return last, last, 0.0
        j = int(np.searchsorted(self.costs, cost, side="right")) - 1
        if cost == self.costs[j]:
            a = int(self.indices[j])
            return a, a, 0.0
        w = (cost - self.costs[j]) / (self.costs[j + 1] - self.costs[j])
        return int(self.indices[j]), int(self.indices[j + 1]), float(w)


def _cross(o: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """z of (a − o) × (b − o); ≥ 0 means a is not strictly above the chord o→b."""
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def upper_hull(costs: ArrayLike, qualities: ArrayLike) -> Hull:
    """Non-decreasing upper concave hull of (cost, quality) points.

    Runs from the cheapest point (ties: highest quality) to the cheapest point
    of maximum quality; points with NaN or infinite cost or quality are
    ignored. Points on a chord (collinear) are not kept as vertices: they add
    nothing a mixture of the chord's ends does not give.
    """
    c = np.asarray(costs, dtype=np.float64)
    q = np.asarray(qualities, dtype=np.float64)
    if c.ndim != 1 or c.shape != q.shape:
        raise ValueError(
            f"upper_hull: costs and qualities must be 1-D of equal length, got {c.shape} "
            f"and {q.shape}"
        )
    if c.size == 0:
        raise ValueError("upper_hull: empty point set; need at least one (cost, quality) point")
    idx = np.flatnonzero(np.isfinite(c) & np.isfinite(q))
    if idx.size == 0:
        raise ValueError("upper_hull: every point has a NaN or infinite cost or quality")

    # Sort by cost, then quality descending, then input order: the first point
    # at each cost is the best one there, and the others can never be vertices.
    order = idx[np.lexsort((idx, -q[idx], c[idx]))]
    first_at_cost = np.ones(order.size, dtype=bool)
    first_at_cost[1:] = c[order][1:] != c[order][:-1]
    order = order[first_at_cost]

    # Stop at the cheapest point of maximum quality: beyond it the frontier is flat.
    q_sorted = q[order]
    end = int(np.argmax(q_sorted))  # first occurrence = cheapest, as costs increase
    order = order[: end + 1]

    # Andrew's monotone chain, upper half: pop while the middle point is not
    # strictly above the chord (non-concave or collinear).
    pts = np.column_stack((c[order], q[order]))
    keep: list[int] = []
    for k in range(pts.shape[0]):
        while len(keep) >= 2 and _cross(pts[keep[-2]], pts[keep[-1]], pts[k]) >= 0:
            keep.pop()
        keep.append(k)

    # Every point before the max-quality one has lower quality, so the chain
    # ends with a positive slope and concavity makes every slope positive:
    # the hull is strictly increasing.
    chosen = order[keep]
    return Hull(
        costs=c[chosen].copy(),
        qualities=q[chosen].copy(),
        indices=chosen.astype(np.intp),
    )


def _integrate_quality(hull: Hull, lo: float, hi: float) -> tuple[float, float]:
    """Exact ∫ quality_at over [lo, hi] where defined, and the defined length.

    The hull is piecewise linear between vertices and flat after the last, so
    trapezoids on the vertices inside the interval are exact. Below the first
    vertex it is undefined and contributes nothing.
    """
    start = max(lo, float(hull.costs[0]))
    if hi <= start:
        return 0.0, 0.0
    inner = hull.costs[(hull.costs > start) & (hull.costs < hi)]
    xs = np.concatenate(([start], inner, [hi]))
    ys = np.array([hull.quality_at(x) for x in xs])
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
    return area, hi - start


def aiq(hull: Hull, c_min: float, c_max: float) -> float:
    """RouterBench's Average Improvement in Quality (AIQ).

    Area under ``hull.quality_at`` with cost rescaled to [0, 1] by
    (c − c_min)/(c_max − c_min), i.e. the mean hull quality over the cost range
    [c_min, c_max] (usually the cheapest and dearest single model's cost).
    Costs below the first vertex count as quality 0.
    """
    if not c_max > c_min:
        raise ValueError(f"aiq: need c_max > c_min, got c_min={c_min}, c_max={c_max}")
    area, _ = _integrate_quality(hull, float(c_min), float(c_max))
    return area / (c_max - c_min)


def cost_at_fraction(
    hull: Hull, reference_quality: float, reference_cost: float, fraction: float
) -> float | None:
    """Cost to reach ``fraction`` × the best single model's quality, as a share of its cost.

    With ``fraction`` 0.98 and 1.0 these are ``cost_at_98`` and ``cost_at_100``:
    how cheaply the policy family matches (nearly) the most accurate model.
    None when the hull never reaches that quality, or when the reference model costs nothing
    (a share of zero cost is undefined: a log whose costs are all 0 has no cost axis).
    """
    if not reference_cost >= 0:
        raise ValueError(f"cost_at_fraction: reference_cost must be >= 0, got {reference_cost}")
    if reference_cost == 0:
        return None
    cost = hull.cost_at(fraction * reference_quality)
    return None if cost is None else cost / reference_cost


def cpt(hull: Hull, q_weak: float, q_strong: float, c_strong: float, p: float) -> float | None:
    """RouteLLM's call-performance threshold CPT(p), generalised from calls to cost.

    The least cost, as a fraction of ``c_strong``, at which the hull reaches
    q_weak + p·(q_strong − q_weak); ``p`` is a fraction (0.5 for CPT(50%)).
    None if the hull never reaches it, if q_strong == q_weak (no gap to recover) or if
    c_strong == 0 (a share of zero cost is undefined).
    """
    if not c_strong >= 0:
        raise ValueError(f"cpt: c_strong must be >= 0, got {c_strong}")
    if q_strong == q_weak or c_strong == 0:
        return None
    cost = hull.cost_at(q_weak + p * (q_strong - q_weak))
    return None if cost is None else cost / c_strong


def apgr(hull: Hull, c_weak: float, c_strong: float, q_weak: float, q_strong: float) -> float:
    """RouteLLM's average performance gap recovered, over cost.

    ∫₀¹ PGR(c_weak + x·(c_strong − c_weak)) dx with
    PGR(c) = (quality_at(c) − q_weak)/(q_strong − q_weak), counted as 0 where
    the hull is undefined; not clipped, so a hull below q_weak counts
    negatively. With cost measured in strong-model calls (c_weak=0, c_strong=1)
    this is RouteLLM's APGR exactly. NaN if q_strong == q_weak.
    """
    if not c_strong > c_weak:
        raise ValueError(f"apgr: need c_strong > c_weak, got {c_weak=}, {c_strong=}")
    if q_strong == q_weak:
        return float("nan")
    area, length = _integrate_quality(hull, float(c_weak), float(c_strong))
    # ∫ (q − q_weak) over the defined part; the undefined part adds 0.
    return (area - q_weak * length) / ((q_strong - q_weak) * (c_strong - c_weak))


def gap_closure(cost_policy: float | None, cost_best: float, cost_oracle: float) -> float | None:
    """Share of the best-single-model-to-oracle cost gap closed, at matched quality.

    (C_best − C_policy)/(C_best − C_oracle): 1 means as cheap as the oracle, 0
    no cheaper than the best single model, negative dearer than it. None when
    the policy never matches the quality (``cost_policy`` is None) or there is
    no gap (C_best == C_oracle).
    """
    if cost_policy is None or cost_best == cost_oracle:
        return None
    return (cost_best - cost_policy) / (cost_best - cost_oracle)
