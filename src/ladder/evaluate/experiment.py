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
from ladder.policies.base import best_model
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.chains import DP_CANDIDATES, BestChain
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import PredictorCache
from ladder.runlog.table import QueryTable

FAMILIES = ("fixed", "random", "oracle", "threshold", "dp", "seed_heuristic")


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
           test: QueryTable, cache: PredictorCache) -> PolicyPoint:
    on_test = policy.replay(test, cache)
    on_train = policy.replay(train, cache)
    chain = getattr(policy, "chain_", None) or (getattr(policy, "model_", None),)
    rates = getattr(getattr(policy, "policy_", policy), "shadow_prices_", ())
    return PolicyPoint(
        family, float(lam), on_test.mean_cost, on_test.mean_quality,
        on_train.mean_cost, on_train.mean_quality,
        tuple(c for c in chain if c is not None), on_test.stage_mix(test.models),
        tuple(None if np.isnan(x) else float(x) for x in rates),
    )


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
) -> Evaluation:
    """Fit each family for every λ on `train`, replay on `test`, summarise the frontiers.

    progress(description, total) is called once per fitted policy (total = all fits).
    BLAS runs single-threaded: the fits are many and small, and two BLAS threads on a
    2-core machine shared with anything else slow them down several times.
    """
    with threadpool_limits(1, "blas"):
        return _evaluate(train, test, split, families, n_lambdas, max_stages, predictor,
                         progress)


def _evaluate(
    train: QueryTable,
    test: QueryTable,
    split: str,
    families: Sequence[str],
    n_lambdas: int,
    max_stages: int,
    predictor: str,
    progress: Callable[[str, int], None] | None,
) -> Evaluation:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown famil(ies) {unknown}; choose from {', '.join(FAMILIES)}")
    cache = PredictorCache(train, predictor)
    lambdas = lambda_grid(train, n_lambdas)
    plan: list[tuple[str, float, Callable[[], BaseEstimator]]] = []
    if "fixed" in families:
        plan += [("fixed", 0.0, lambda m=m: FixedModel(m)) for m in train.models]
    if "oracle" in families:
        plan += [("oracle", lam, lambda lam=lam: Oracle(lam)) for lam in lambdas]
    policies: dict[tuple[str, float], BaseEstimator] = {}

    def dp_at(lam: float) -> BestChain:
        """A DP over the threshold search's best chains at the same λ when it ran already."""
        searched = policies.get(("threshold", lam))
        chains = searched.ranking_[:DP_CANDIDATES] if searched else None
        return BestChain("dp", lam, max_stages, chains=chains, predictor=predictor)

    if "threshold" in families:
        plan += [("threshold", lam, lambda lam=lam: BestChain("threshold", lam, max_stages,
                                                              predictor=predictor))
                 for lam in lambdas]
    if "dp" in families or "random" in families:
        plan += [("dp", lam, lambda lam=lam: dp_at(lam)) for lam in lambdas]
    if "seed_heuristic" in families:
        plan += [("seed_heuristic", lam, lambda lam=lam: SeedHeuristic(None, lam,
                                                                       predictor=predictor))
                 for lam in SEED_LAMBDAS]
    total = len(plan) + (len(lambdas) if "random" in families else 0)
    points: list[PolicyPoint] = []
    for family, lam, make in plan:
        policy = make().fit(train, cache)
        policies[(family, lam)] = policy
        points.append(_point(policy, family, lam, train, test, cache))
        if progress:
            progress(f"{family} λ={lam:.3g}", total)
    if "random" in families:
        for p in [p for p in points if p.family == "dp"]:
            policy = RandomMix(target_cost=p.train_cost).fit(train)
            policies[("random", p.lam)] = policy
            points.append(_point(policy, "random", p.lam, train, test, cache))
            if progress:
                progress(f"random λ={p.lam:.3g}", total)
    points = [p for p in points if p.family in families]
    models = [
        {"name": m, "cost": float(c), "quality": float(q)}
        for m, c, q in zip(test.models, test.mean_cost(), test.mean_quality(), strict=True)
    ]
    oracle = oracle_hull(test, lambdas)
    summary = {
        family: summarise([p for p in points if p.family == family], models, oracle)
        for family in families
    }
    return Evaluation(
        n_train=train.n, n_test=test.n, dropped=train.dropped, split=split, models=models,
        points=points, summary=summary, predictors=_predictor_report(train, test, cache),
        policies=policies,
    )


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
             "shadow_prices": list(p.shadow_prices)}
            for p in evaluation.points
        ],
        "summary": evaluation.summary,
        "predictors": evaluation.predictors,
    }
