"""The λ sweep: fit every policy family on the training split, replay it on the test
split, and summarise each family's cost-quality frontier (theory.md §2, §4, §8)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from ladder.evaluate.frontier import (
    Hull,
    aiq,
    apgr,
    cost_at_fraction,
    cpt,
    gap_closure,
    upper_hull,
)
from ladder.evaluate.intervals import frontier_intervals
from ladder.evaluate.stability import refit_subsamples
from ladder.evaluate.sweep import sweep
from ladder.evaluate.target import quality_point
from ladder.policies.base import Outcome, best_model
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.moa import MoAUnavailable
from ladder.policies.moa import fit_sweep as moa_sweep
from ladder.policies.router import Router, router_cache
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import PredictorCache
from ladder.runlog.schema import RunLogError
from ladder.runlog.table import QueryTable

FAMILIES = ("fixed", "random", "oracle", "threshold", "dp", "auto", "seed_heuristic", "moa",
            "router", "routed")


@dataclass(frozen=True)
class PolicyPoint:
    """One fitted policy replayed on the test split."""

    family: str
    lam: float
    cost: float
    quality: float
    train_cost: float
    train_quality: float
    chain: tuple[str, ...]
    stage_mix: dict[str, float]
    shadow_prices: tuple[float, ...] = ()
    choice: dict | None = None  # auto: the family and options it chose at this λ


@dataclass
class Evaluation:
    n_train: int
    n_test: int
    dropped: int
    split: str
    models: list[dict]
    points: list[PolicyPoint]
    summary: dict[str, dict]
    predictors: list[dict]
    policies: dict[tuple[str, float], BaseEstimator] = field(default_factory=dict, repr=False)
    outcomes: list[Outcome] = field(default_factory=list, repr=False)  # per point, on test
    comparisons: list[dict] = field(default_factory=list)  # paired bootstrap differences
    notes: list[str] = field(default_factory=list)  # families left out, and why

    def family_points(self, family: str) -> list[PolicyPoint]:
        return [p for p in self.points if p.family == family]


def lambda_grid(train: QueryTable, n: int) -> np.ndarray:
    """0 and n λ values from 'every model is nearly free' to 'the cheapest model costs as
    much as a perfect answer', geometric in between."""
    costs = train.mean_cost()
    positive = costs[costs > 0]
    if len(positive) == 0:
        return np.array([0.0])
    low, high = 0.01 / positive.max(), 1.0 / positive.min()
    return np.r_[0.0, np.geomspace(low, high, n)]


SEED_LAMBDAS = np.geomspace(0.01, 100.0, 15)


def _point(policy: BaseEstimator, family: str, lam: float, train: QueryTable,
           test: QueryTable, cache: PredictorCache) -> tuple[PolicyPoint, Outcome]:
    """The policy's test point (and per-query test outcome); its train figures are judged
    like its fit (labels, and p̂ where a label is missing)."""
    on_test = policy.replay(test, cache)
    on_train = policy.replay(train, cache)
    judged = cache.targets(train, 1.0)[np.arange(train.n), on_train.chosen]
    chain = getattr(policy, "chain_", None) or (getattr(policy, "model_", None),)
    rates = getattr(getattr(policy, "policy_", policy), "shadow_prices_", ())
    point = PolicyPoint(
        family, float(lam), on_test.mean_cost, on_test.mean_quality,
        on_train.mean_cost, float(judged.mean()),
        tuple(c for c in chain if c is not None), on_test.stage_mix(test.models),
        tuple(None if np.isnan(x) else float(x) for x in rates),
        getattr(policy, "choice_", None),
    )
    return point, on_test


def _predictor_report(train: QueryTable, test: QueryTable, cache: PredictorCache) -> list[dict]:
    """Per-stage AUROC and Brier score on the test split, full ladder in cost order,
    beside the AUROC of the model's raw confidence."""
    chain = list(range(test.k))
    scores = cache.scores(test, chain)
    rows = []
    for i, model in enumerate(test.models):
        correct = test.quality[:, i] >= 0.5
        both = 0 < correct.sum() < len(correct)
        raw = test.signals["confidence"][:, i]
        raw_ok = both and not np.isnan(raw).all()
        rows.append({
            "stage": i,
            "model": model,
            "auroc": float(roc_auc_score(correct, scores[:, i])) if both else None,
            "brier": float(brier_score_loss(correct, np.clip(scores[:, i], 0, 1))),
            "raw_confidence_auroc": (
                float(roc_auc_score(correct, np.nan_to_num(raw, nan=0.0))) if raw_ok else None
            ),
        })
    return rows


def oracle_hull(test: QueryTable, lambdas: Sequence[float]) -> Hull:
    """The oracle family's frontier on the test split over the λ sweep.

    Gap closure compares a family with the oracle at the same quality, so this is computed
    on its own (one argmax per λ, cheap) whatever families were asked for.
    """
    outcomes = [Oracle(lam).fit(test).replay(test) for lam in lambdas]
    return upper_hull([o.mean_cost for o in outcomes], [o.mean_quality for o in outcomes])


def summarise(points: Sequence[PolicyPoint], models: list[dict], oracle: Hull) -> dict:
    """Frontier metrics of one family (theory.md §8) against the test split's single models.

    The mixture and gap closure at 98% are read at the hull's own cost there, not at a
    cost → share → cost round trip that can land a hair below the cheapest vertex. Gap
    closure's C_oracle is the `oracle` hull's cost at that same quality. Shares of the most
    accurate model's cost are None when it costs nothing (no cost axis to compare on).
    """
    costs = np.array([m["cost"] for m in models])
    qualities = np.array([m["quality"] for m in models])
    best = best_model(qualities, costs)
    weak = int(np.argmin(costs))
    q_best, c_best = qualities[best], costs[best]
    hull = upper_hull([p.cost for p in points], [p.quality for p in points])
    cost98 = hull.cost_at(0.98 * q_best)

    def mix_at(cost: float | None) -> dict | None:
        if cost is None:
            return None
        a, b, w = hull.mixture(cost)
        return {"lambda_a": points[a].lam, "lambda_b": points[b].lam, "weight_b": w}

    c_lo, c_hi = costs.min(), costs.max()
    return {
        "aiq": aiq(hull, c_lo, c_hi) if c_hi > c_lo else None,
        "cost_at_98": cost_at_fraction(hull, q_best, c_best, 0.98),
        "cost_at_100": cost_at_fraction(hull, q_best, c_best, 1.0),
        "cpt50": cpt(hull, qualities[weak], q_best, c_best, 0.5),
        "cpt80": cpt(hull, qualities[weak], q_best, c_best, 0.8),
        "apgr": apgr(hull, costs[weak], c_best, qualities[weak], q_best)
        if c_best > costs[weak] else None,
        "gap_closure_98": gap_closure(cost98, c_best, oracle.cost_at(0.98 * q_best)),
        "max_quality": float(max(p.quality for p in points)),
        "mix_at_98": mix_at(cost98),
        "hull": [
            {"lambda": points[i].lam, "cost": float(c), "quality": float(q)}
            for i, c, q in zip(hull.indices, hull.costs, hull.qualities, strict=True)
        ],
    }


def evaluate(
    train: QueryTable,
    test: QueryTable,
    *,
    split: str = "",
    families: Sequence[str] = FAMILIES,
    n_lambdas: int = 20,
    max_stages: int = 3,
    predictor: str = "logistic",
    progress: Callable[[str, int], None] | None = None,
    pool: QueryTable | None = None,
    n_resamples: int = 1000,
    n_jobs: int | None = None,
    n_refits: int = 0,
) -> Evaluation:
    """Fit each family for every λ on `train`, replay on `test`, summarise the frontiers.

    pool: the training queries of several tasks (train's among them) to fit the quality
    predictors on with partial pooling (theory.md §9); tuning still uses `train` only.
    n_resamples: bootstrap resamples of the test queries for the 90% intervals (0: none).
    n_jobs: processes fitting λ values in parallel (default: every core).
    n_refits: refits on subsamples of train for the stability check (0: none).
    progress(description, total) is called once per fitted policy (total = all fits).
    BLAS runs single-threaded: the fits are many and small, and two BLAS threads on a
    2-core machine shared with anything else slow them down several times.
    """
    labelled = ~np.isnan(test.quality).any(axis=1)
    if not labelled.any():
        raise RunLogError("the test split has no labelled query (every one has a null "
                          "quality); label some, or evaluate on another split", "quality")
    test = test if labelled.all() else test.rows(labelled)  # unlabelled rows are never scored
    with threadpool_limits(1, "blas"):
        evaluation = _evaluate(train, test, split, families, n_lambdas, max_stages, predictor,
                               progress, pool, n_resamples, n_jobs)
    if n_refits:
        refits = refit_subsamples(evaluate, train, test, families, n_refits, pool,
                                  n_lambdas=n_lambdas, max_stages=max_stages,
                                  predictor=predictor, n_jobs=n_jobs)
        for family, result in refits.items():
            evaluation.summary[family]["stability"] = result
    return evaluation


def _evaluate(
    train: QueryTable,
    test: QueryTable,
    split: str,
    families: Sequence[str],
    n_lambdas: int,
    max_stages: int,
    predictor: str,
    progress: Callable[[str, int], None] | None,
    pool: QueryTable | None = None,
    n_resamples: int = 1000,
    n_jobs: int | None = None,
) -> Evaluation:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown famil(ies) {unknown}; choose from {', '.join(FAMILIES)}")
    notes: list[str] = []
    for family in ("router", "routed"):
        if family in families and train.prompts is None:
            families = [f for f in families if f != family]
            notes.append(f"{family}: left out, the log has no 'prompt' column")
    cache = PredictorCache(train, predictor, pool=pool)
    lambdas = lambda_grid(train, n_lambdas)
    cascades = {"threshold", "dp", "auto", "routed", "random"} & set(families)
    total = (len(train.models) * ("fixed" in families) + len(lambdas) * len(cascades)
             + len(lambdas) * ("oracle" in families) + len(lambdas) * ("moa" in families)
             + len(SEED_LAMBDAS) * ("seed_heuristic" in families)
             + len(lambdas) * (("router" in families) + ("routed" in families)))
    points: list[PolicyPoint] = []
    outcomes: list[Outcome] = []
    policies: dict[tuple[str, float], BaseEstimator] = {}

    def add(family: str, lam: float, policy: BaseEstimator) -> None:
        policies[(family, lam)] = policy
        point, outcome = _point(policy, family, lam, train, test, cache)
        points.append(point)
        outcomes.append(outcome)
        if progress:
            progress(f"{family} λ={lam:.3g}", total)

    if "fixed" in families:
        for model in train.models:
            add("fixed", 0.0, FixedModel(model).fit(train))
    if "oracle" in families:
        for lam in lambdas:
            add("oracle", lam, Oracle(lam).fit(train))
    # the router variants, fitted once: the router family, routed and auto's routed option
    routers = router_cache(train) if {"router", "routed", "auto"} & set(families) else None
    fits = sweep(train, cache, lambdas if cascades else [], families, max_stages, predictor,
                 n_jobs, routers=routers)
    for lam, fitted in zip(lambdas if cascades else [], fits, strict=True):
        for family in ("threshold", "dp", "auto", "routed"):
            if family in families:
                add(family, lam, fitted[family])
        if "random" in families:  # no information, at the cost the dp cascade pays on train
            train_cost = fitted["dp"].replay(train, cache).mean_cost
            add("random", lam, RandomMix(target_cost=train_cost).fit(train))
    if "moa" in families:
        try:
            for lam, policy in zip(lambdas, moa_sweep(train, lambdas), strict=True):
                add("moa", lam, policy)
        except MoAUnavailable as why:
            notes.append(f"moa skipped: {why}")
            families = tuple(f for f in families if f != "moa")
    if "seed_heuristic" in families:
        for lam in SEED_LAMBDAS:
            add("seed_heuristic", lam, SeedHeuristic(None, lam, predictor=predictor)
                .fit(train, cache))
    if "router" in families:  # each λ only re-decides
        for lam in lambdas:
            add("router", lam, Router(lam).fit(train, routers))
    models = [
        {"name": m, "cost": float(c), "quality": float(q)}
        for m, c, q in zip(test.models, test.mean_cost(), test.mean_quality(), strict=True)
    ]
    oracle = oracle_hull(test, lambdas)
    summary = {
        family: summarise([p for p in points if p.family == family], models, oracle)
        for family in families
    }
    comparisons: list[dict] = []
    judge = cache.targets(train, 1.0)
    for family in [f for f in ("threshold", "dp", "auto", "moa", "router", "routed")
                   if f in families]:
        chosen = [(p, o) for p, o in zip(points, outcomes, strict=True) if p.family == family]
        summary[family]["target_98"] = quality_point(
            [_held_out(policies[(family, p.lam)], judge) for p, _ in chosen],
            [o for _, o in chosen],
            [f"{family} λ={p.lam:.3g}" for p, _ in chosen], judge, train, test)
    reference_cost = test.mean_cost()[best_model(test.mean_quality(), test.mean_cost())]
    if n_resamples and reference_cost > 0:  # the metrics are shares of that cost
        cis = _intervals(test, families, points, outcomes, n_resamples)
        for family in families:
            summary[family]["ci"] = cis["families"][family]
        comparisons = cis["comparisons"]
    return Evaluation(
        n_train=train.n, n_test=test.n, dropped=train.dropped, split=split, models=models,
        points=points, summary=summary, predictors=_predictor_report(train, test, cache),
        policies=policies, outcomes=outcomes, comparisons=comparisons, notes=notes,
    )


def _held_out(policy: BaseEstimator, judge: np.ndarray) -> Outcome:
    """A policy's held-out training outcome scored by the judge the cascades use (labels,
    p̂ where a label is missing): moa and router score theirs on raw labels."""
    outcome = policy.held_out_
    quality = judge[np.arange(len(outcome.chosen)), outcome.chosen]
    return Outcome(outcome.chosen, outcome.last_run, quality, outcome.cost)


COMPARISONS = (("auto", "threshold"), ("auto", "dp"), ("auto", "seed_heuristic"),
               ("auto", "fixed"), ("dp", "threshold"), ("moa", "auto"), ("router", "auto"),
               ("routed", "auto"), ("routed", "router"))


def _intervals(test: QueryTable, families: Sequence[str], points: Sequence[PolicyPoint],
               outcomes: Sequence[Outcome], n_resamples: int) -> dict:
    """Bootstrap intervals (over test queries, paired across families) of every family's
    AIQ and cost_at_*, and the paired differences of COMPARISONS present."""
    per_family = {
        family: tuple(np.column_stack([getattr(o, field) for p, o in zip(points, outcomes,
                                                                            strict=True)
                                       if p.family == family]) for field in ("cost", "quality"))
        for family in families
    }
    pairs = [(a, b) for a, b in COMPARISONS if a in families and b in families]
    return frontier_intervals(per_family, test.cost, test.quality, comparisons=pairs,
                              b=n_resamples)


def to_json(evaluation: Evaluation) -> dict:
    """The `--json` document."""
    return {
        "n_train": evaluation.n_train,
        "n_test": evaluation.n_test,
        "dropped": evaluation.dropped,
        "split": evaluation.split,
        "models": evaluation.models,
        "policies": [
            {"family": p.family, "lambda": p.lam, "cost": p.cost, "quality": p.quality,
             "train_cost": p.train_cost, "train_quality": p.train_quality,
             "chain": list(p.chain), "stage_mix": p.stage_mix,
             "shadow_prices": list(p.shadow_prices), "choice": p.choice}
            for p in evaluation.points
        ],
        "summary": evaluation.summary,
        "comparisons": evaluation.comparisons,
        "predictors": evaluation.predictors,
        "notes": evaluation.notes,
    }
