"""Bootstrap confidence intervals for the frontier metrics (theory.md §7–§8).

A family's AIQ and cost_at_98 are functions of the mean cost and quality of its
policies and of the single models over the test queries, so their sampling error
is estimated by resampling test queries with replacement: each resample gives
every policy's and every model's mean cost and quality (one matrix product of
resample counts with the per-query values), and the metrics are recomputed from
those means, the reference (most accurate) model re-chosen in each replicate.
Every family is resampled on the same query indices, so differences between
families are paired by query.

The metrics are computed for all replicates at once from each replicate's hull
vertices, without Hull objects; :func:`frontier_metrics` runs the same code on
the full test split, so a point estimate and its replicates never differ in
method. The tests check that code against frontier.upper_hull, aiq and
cost_at_fraction.

Intervals are percentile intervals: at level 0.90 the 5th and 95th percentiles
of the replicates, each an order statistic (the inverted empirical CDF: the
smallest replicate value v with share(replicates ≤ v) ≥ p), so they can be
checked exactly. A replicate whose hull never reaches a cost_at target counts as
+inf there: the percentile is then still well defined, and an end that falls on
such a replicate is reported as None ("not reached").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ladder.evaluate.frontier import _QUALITY_ATOL

__all__ = [
    "FRACTIONS",
    "Replicates",
    "Resamples",
    "frontier_intervals",
    "frontier_metrics",
    "interval",
    "mean_interval",
    "paired_difference",
    "paired_mean_interval",
    "replicate_metrics",
]

# The cost_at metrics: least hull cost reaching this fraction of the reference quality.
FRACTIONS: dict[str, float] = {"cost_at_98": 0.98, "cost_at_100": 1.0}

Array = NDArray[np.float64]
_SLOPE_BLOCK = 1 << 20  # entries of one block's (rows, P, P) slope array


def _best_model(costs: ArrayLike, qualities: ArrayLike) -> NDArray[np.intp]:
    """Most accurate model, ties to the cheaper, then to the first; row-wise on (B, k).

    lexsort compares exact values, so it is right at any cost scale, where
    argmax(q − ε·c) lets a cheaper, slightly worse model win once costs are ~ε.
    """
    c, q = np.asarray(costs, dtype=np.float64), np.asarray(qualities, dtype=np.float64)
    return np.lexsort((c, -q), axis=-1)[..., 0]


def _interp_rows(x: Array, xp: Array, fp: Array) -> Array:
    """np.interp row by row for x ≥ xp[:, 0], xp non-decreasing (repeats only at its end)."""
    m = xp.shape[1]
    if m == 1:
        return fp[:, 0].copy()
    j = np.clip((xp <= x[:, None]).sum(axis=1) - 1, 0, m - 1)
    jj = np.minimum(j, m - 2)[:, None]
    x0, x1 = np.take_along_axis(xp, jj, 1)[:, 0], np.take_along_axis(xp, jj + 1, 1)[:, 0]
    f0, f1 = np.take_along_axis(fp, jj, 1)[:, 0], np.take_along_axis(fp, jj + 1, 1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (f1 - f0) / (x1 - x0) * (x - x0) + f0  # np.interp's own formula
    return np.where(j >= m - 1, fp[:, -1], inside)


def _hull_rows(pc: Array, pq: Array) -> tuple[Array, Array]:
    """Vertices of each row's non-decreasing upper hull, as frontier.upper_hull builds them.

    Returns (B, P) costs and qualities in cost order, padded by repeating the
    last vertex, so every row has the same width. A point is a vertex when some
    line through it has every other point below: min slope from the points
    before it > max slope to the points after (strict, so collinear points are
    dropped as upper_hull drops them); the hull stops at the cheapest point of
    maximum quality. O(P²) per row, all rows at once.
    """
    b, p = pc.shape
    ok = np.isfinite(pc) & np.isfinite(pq)
    if not ok.any(axis=1).all():
        raise ValueError("frontier metrics: every point has a NaN or infinite cost or quality")
    # A non-finite point becomes a copy of a finite one: a duplicate never changes the hull.
    first = ok.argmax(axis=1)[:, None]
    pc = np.where(ok, pc, np.take_along_axis(pc, first, 1))
    pq = np.where(ok, pq, np.take_along_axis(pq, first, 1))
    order = np.lexsort((-pq, pc), axis=1)  # by cost, then quality descending
    c, q = np.take_along_axis(pc, order, 1), np.take_along_axis(pq, order, 1)
    alive = np.ones((b, p), dtype=bool)  # the best point at each cost
    alive[:, 1:] = c[:, 1:] != c[:, :-1]
    end = (q == q.max(axis=1, keepdims=True)).argmax(axis=1)  # cheapest of maximum quality
    pair = np.triu(np.ones((p, p), dtype=bool), 1) & alive[:, :, None] & alive[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (q[:, None, :] - q[:, :, None]) / (c[:, None, :] - c[:, :, None])  # [i, k]: i→k
    left = np.where(pair, slope, np.inf).min(axis=1)
    right = np.where(pair, slope, -np.inf).max(axis=2)
    vertex = alive & (left > right) & (np.arange(p) <= end[:, None])
    pick = np.argsort(~vertex, axis=1, kind="stable")  # vertices first, in cost order
    hc, hq = np.take_along_axis(c, pick, 1), np.take_along_axis(q, pick, 1)
    count = vertex.sum(axis=1, keepdims=True)
    pad, last = np.arange(p) >= count, count - 1
    hc = np.where(pad, np.take_along_axis(hc, last, 1), hc)
    hq = np.where(pad, np.take_along_axis(hq, last, 1), hq)
    return hc, hq


def _metrics_rows(pc: Array, pq: Array, mc: Array, mq: Array) -> dict[str, NDArray]:
    """Headline metrics of B replicates: point means (B, P) and model means (B, k).

    aiq is NaN where all model costs are equal; a cost_at is +inf where the hull
    never reaches its target and NaN where the reference model costs nothing.
    "reference" is each replicate's reference model index.
    """
    # Rows in blocks so the (rows, P, P) slope arrays stay small even for large P.
    step = max(1, _SLOPE_BLOCK // pc.shape[1] ** 2)
    blocks = [_hull_rows(pc[i:i + step], pq[i:i + step]) for i in range(0, pc.shape[0], step)]
    hc, hq = np.vstack([h[0] for h in blocks]), np.vstack([h[1] for h in blocks])
    rows = np.arange(pc.shape[0])
    ref = _best_model(mc, mq)
    q_ref, c_ref = mq[rows, ref], mc[rows, ref]
    out: dict[str, NDArray] = {"reference": ref}

    # AIQ: trapezoids on [start, vertices inside, hi], exact as the hull is piecewise linear.
    lo, hi = mc.min(axis=1), mc.max(axis=1)
    start = np.maximum(lo, hc[:, 0])
    end = np.maximum(hi, start)
    xs = np.column_stack((start, np.clip(hc, start[:, None], end[:, None]), end))
    f_start, f_end = _interp_rows(start, hc, hq), _interp_rows(end, hc, hq)
    ys = np.where(hc <= start[:, None], f_start[:, None],
                  np.where(hc >= end[:, None], f_end[:, None], hq))
    ys = np.column_stack((f_start, ys, f_end))
    area = np.sum(np.diff(xs, axis=1) * (ys[:, 1:] + ys[:, :-1]) / 2.0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["aiq"] = np.where(hi > lo, area / (hi - lo), np.nan)

    # cost_at: Hull.cost_at (None → +inf) over the reference cost.
    for name, fraction in FRACTIONS.items():
        target = fraction * q_ref
        cost = np.where(target <= hq[:, 0], hc[:, 0],
                        np.where(target >= hq[:, -1], hc[:, -1], _interp_rows(target, hq, hc)))
        cost = np.where(target > hq[:, -1] + _QUALITY_ATOL, np.inf, cost)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = np.where(c_ref > 0, cost / c_ref, np.nan)
    return out


def _number(x: float) -> float | None:
    """JSON-ready: a finite float, else None (NaN: undefined; +inf: not reached)."""
    return float(x) if math.isfinite(x) else None


def frontier_metrics(
    point_costs: ArrayLike,
    point_qualities: ArrayLike,
    model_costs: ArrayLike,
    model_qualities: ArrayLike,
) -> dict[str, float | None]:
    """A family's AIQ, cost_at_98 and cost_at_100 from mean costs and qualities.

    The reference is the most accurate model (ties: the cheaper); AIQ's cost range
    is [min, max model cost] and None when those are equal; a cost_at is the least
    hull cost reaching fraction × reference quality over the reference's cost,
    None when never reached. Same code as every bootstrap replicate.
    """
    pc, pq = np.asarray(point_costs, np.float64), np.asarray(point_qualities, np.float64)
    mc, mq = np.asarray(model_costs, np.float64), np.asarray(model_qualities, np.float64)
    for what, c, q in (("point", pc, pq), ("model", mc, mq)):
        if c.ndim != 1 or c.shape != q.shape or c.size == 0:
            raise ValueError(f"frontier_metrics: {what} costs and qualities must be 1-D, of "
                             f"equal length, non-empty; got {c.shape} and {q.shape}")
    if not (np.isfinite(mc).all() and np.isfinite(mq).all()):
        raise ValueError("frontier_metrics: model costs and qualities must be finite")
    m = _metrics_rows(pc[None], pq[None], mc[None], mq[None])
    if not mc[int(m["reference"][0])] > 0:
        raise ValueError("frontier_metrics: the reference (most accurate) model's cost must be > 0")
    return {name: _number(m[name][0]) for name in ("aiq", *FRACTIONS)}


@dataclass(frozen=True, eq=False)
class Resamples:
    """B resamples (rows) of the n test-query indices, shared by every family.

    Build with :meth:`draw`, or give explicit indices (a test can enumerate every
    resample of a tiny set). Means over a resample are counts @ values / n.
    """

    indices: NDArray[np.intp]
    counts: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        idx = np.asarray(self.indices)
        if idx.ndim != 2 or idx.shape[0] < 1 or idx.shape[1] < 1:
            raise ValueError(f"Resamples: indices must be (B ≥ 1, n ≥ 1), got shape {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("Resamples: indices must be integers")
        b, n = idx.shape
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"Resamples: indices must lie in [0, {n})")
        flat = (idx + n * np.arange(b)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        object.__setattr__(self, "indices", idx.astype(np.intp))
        object.__setattr__(self, "counts", counts)
        self.indices.setflags(write=False)
        counts.setflags(write=False)

    @classmethod
    def draw(cls, n: int, b: int = 1000, seed: int = 0) -> Resamples:
        """b uniform resamples of n queries with replacement, reproducible from seed."""
        if b < 1 or n < 1:
            raise ValueError(f"Resamples.draw: need b ≥ 1 and n ≥ 1, got b={b}, n={n}")
        return cls(np.random.default_rng(seed).integers(0, n, size=(b, n)))

    @property
    def b(self) -> int:
        return int(self.indices.shape[0])

    @property
    def n(self) -> int:
        return int(self.indices.shape[1])

    def means(self, values: ArrayLike) -> Array:
        """Per-resample means of per-query values: (n,) → (B,), (n, P) → (B, P)."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape[0] != self.n:
            raise ValueError(f"Resamples.means: expected {self.n} queries, got {v.shape[0]}")
        return self.counts @ v / self.n


@dataclass(frozen=True, eq=False)
class Replicates:
    """A family's metrics on the full test split (point) and on each resample (values)."""

    point: dict[str, float | None]
    values: dict[str, NDArray]  # "aiq", "cost_at_98", "cost_at_100" (B,), "reference" (B,)
    reference: int  # the reference model on the full test split
    resamples: Resamples


def _per_query(name: str, x: ArrayLike, n: int | None) -> Array:
    a = np.asarray(x, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] == 0 or (n is not None and a.shape[0] != n):
        raise ValueError(f"{name}: expected (n_queries, columns), got shape {np.shape(x)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: per-query values must be finite")
    return a


def replicate_metrics(
    resamples: Resamples,
    cost: ArrayLike,
    quality: ArrayLike,
    model_cost: ArrayLike,
    model_quality: ArrayLike,
) -> Replicates:
    """Metrics of one family on every resample; per-query inputs are (n, P) and (n, k).

    Column j of cost/quality is policy j replayed on the test queries; model
    columns are the single models. The single-model family ("fixed-best") is
    cost=model_cost, quality=model_quality.
    """
    n = resamples.n
    c, q = _per_query("cost", cost, n), _per_query("quality", quality, n)
    mc, mq = _per_query("model_cost", model_cost, n), _per_query("model_quality", model_quality, n)
    if c.shape != q.shape or mc.shape != mq.shape:
        raise ValueError("replicate_metrics: cost/quality (and model ones) must have equal shapes")
    point = frontier_metrics(c.mean(axis=0), q.mean(axis=0), mc.mean(axis=0), mq.mean(axis=0))
    reference = int(_best_model(mc.mean(axis=0), mq.mean(axis=0)))
    values = _metrics_rows(resamples.means(c), resamples.means(q),
                           resamples.means(mc), resamples.means(mq))
    return Replicates(point, values, reference, resamples)


def _order_stat(sorted_values: Array, p: float) -> float:
    """Inverted-CDF quantile: the smallest v with share(values ≤ v) ≥ p."""
    k = max(math.ceil(p * sorted_values.size - 1e-9), 1) - 1
    return float(sorted_values[k])


def _ends(values: NDArray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval over the defined (non-NaN) replicates; +inf ends become None."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    v = np.sort(values[~np.isnan(values)])
    if v.size == 0:
        return None, None
    alpha = (1.0 - level) / 2.0
    return _number(_order_stat(v, alpha)), _number(_order_stat(v, 1.0 - alpha))


def interval(rep: Replicates, level: float = 0.90) -> dict:
    """JSON-ready percentile intervals of a family's metrics (the "ci" of a family).

    {"level", "resamples" (B), "reference_stable": share of replicates whose reference model
    is the full split's, "aiq": {"point", "low", "high"}, and per cost_at:
    {"point", "low", "high", "share_reached"}}. Unreached replicates count as +inf,
    so "high" (or even "low") is None when more than (1 − level)/2 of them miss.
    """
    v = rep.values
    out: dict = {"level": level, "resamples": rep.resamples.b,
                 "reference_stable": float(np.mean(v["reference"] == rep.reference))}
    low, high = _ends(v["aiq"], level)
    out["aiq"] = {"point": rep.point["aiq"], "low": low, "high": high}
    for name in FRACTIONS:
        low, high = _ends(v[name], level)
        defined = v[name][~np.isnan(v[name])]
        share = float(np.isfinite(defined).mean()) if defined.size else None
        out[name] = {"point": rep.point[name], "low": low, "high": high, "share_reached": share}
    return out


def paired_difference(a: Replicates, b: Replicates, level: float = 0.90) -> dict:
    """Percentile intervals of a − b per resample, for two families on the same resamples.

    aiq: {"point", "low", "high", "share_positive"}. A cost_at difference exists
    only where both families reach the target, so its interval is over those
    replicates (conditional on both reaching), beside the shares of replicates
    where both, only a, only b or neither reach; "point" is None unless both
    reach on the full split. "share_positive" is over the replicates the interval uses.
    """
    if a.resamples is not b.resamples:
        raise ValueError("paired_difference: a and b must be computed on the same Resamples")
    out: dict = {"level": level, "resamples": a.resamples.b}
    pa, pb = a.point["aiq"], b.point["aiq"]
    d = a.values["aiq"] - b.values["aiq"]
    low, high = _ends(d, level)
    ok = ~np.isnan(d)
    out["aiq"] = {"point": None if pa is None or pb is None else pa - pb, "low": low,
                  "high": high, "share_positive": float(np.mean(d[ok] > 0)) if ok.any() else None}
    for name in FRACTIONS:
        va, vb = a.values[name], b.values[name]
        ra, rb = np.isfinite(va), np.isfinite(vb)
        both = ra & rb
        d = va[both] - vb[both]
        low, high = _ends(d, level)
        pa, pb = a.point[name], b.point[name]
        out[name] = {
            "point": None if pa is None or pb is None else pa - pb,
            "low": low,
            "high": high,
            "share_positive": float(np.mean(d > 0)) if d.size else None,
            "share_both": float(both.mean()),
            "share_only_a": float((ra & ~rb).mean()),
            "share_only_b": float((~ra & rb).mean()),
            "share_neither": float((~ra & ~rb).mean()),
        }
    return out


def paired_mean_interval(
    resamples: Resamples, a: ArrayLike, b: ArrayLike, *, ratio: bool = False,
    level: float = 0.90,
) -> dict[str, float | None]:
    """Interval of mean(a) − mean(b), or mean(a)/mean(b), for paired per-query vectors.

    E.g. a policy's per-query cost against the best model's (theory.md §7's cost
    ratio and accuracy difference). Ratios where mean(b) is 0 are left out.
    """
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if va.shape != (resamples.n,) or vb.shape != (resamples.n,):
        raise ValueError(f"paired_mean_interval: a and b must have shape ({resamples.n},)")
    ma, mb = resamples.means(va), resamples.means(vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(mb != 0, ma / mb, np.nan) if ratio else ma - mb
        point = va.mean() / vb.mean() if ratio else va.mean() - vb.mean()
    low, high = _ends(reps, level)
    return {"point": _number(point), "low": low, "high": high}


def mean_interval(resamples: Resamples, values: ArrayLike,
                  level: float = 0.90) -> dict[str, float | None]:
    """Percentile interval of mean(values) over the resamples, e.g. a share of queries."""
    v = np.asarray(values, np.float64)
    if v.shape != (resamples.n,):
        raise ValueError(f"mean_interval: values must have shape ({resamples.n},)")
    low, high = _ends(resamples.means(v), level)
    return {"point": _number(v.mean()), "low": low, "high": high}


def frontier_intervals(
    families: Mapping[str, tuple[ArrayLike, ArrayLike]],
    model_cost: ArrayLike,
    model_quality: ArrayLike,
    *,
    comparisons: Sequence[tuple[str, str]] = (),
    b: int = 1000,
    seed: int = 0,
    level: float = 0.90,
    resamples: Resamples | None = None,
) -> dict:
    """Every family's "ci" and the paired a − b comparisons, on one set of resamples.

    families maps a name to per-query (cost, quality), each (n, P). Pass the
    single models as a family (e.g. "fixed": (model_cost, model_quality)) to
    compare against fixed-best. Returns {"families": {name: interval(...)},
    "comparisons": [{"a": name, "b": name, **paired_difference(...)}]}.
    """
    n = np.shape(model_cost)[0]
    rs = resamples if resamples is not None else Resamples.draw(n, b, seed)
    reps = {name: replicate_metrics(rs, c, q, model_cost, model_quality)
            for name, (c, q) in families.items()}
    for pair in comparisons:
        missing = [x for x in pair if x not in reps]
        if missing:
            raise KeyError(f"frontier_intervals: comparison names unknown famil(ies) {missing}")
    return {
        "families": {name: interval(r, level) for name, r in reps.items()},
        "comparisons": [{"a": x, "b": y, **paired_difference(reps[x], reps[y], level)}
                        for x, y in comparisons],
    }
