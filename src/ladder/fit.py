"""Fit one deployable policy on a run log (what `ladder fit` and the demo run)."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.base import BaseEstimator

from ladder.policies.auto import AutoCascade
from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import QueryTable

POLICIES = {"auto": AutoCascade, "threshold": ThresholdCascade, "dp": DPCascade,
            "seed_heuristic": SeedHeuristic}


def fit_policy(table: QueryTable, policy: str = "auto", lam: float = 0.0,
               chain: Sequence[str] | None = None, max_stages: int = 3,
               predictor: str = "logistic", pool: QueryTable | None = None) -> BaseEstimator:
    """A deployable policy of family `policy` at trade-off λ: a cascade, or for `auto` the
    cascade or single model it chose. Without `chain`, threshold and dp search every
    cost-ordered chain of up to `max_stages` models (judged on held-out folds of `table`);
    seed_heuristic climbs the whole ladder. pool: several tasks' training queries to fit
    the predictors on with partial pooling."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy '{policy}'; choose one of {', '.join(POLICIES)}")
    if lam < 0:
        raise ValueError(f"λ must be ≥ 0, got {lam}")
    if chain is not None:
        if policy == "auto":
            raise ValueError("--chain fixes the models of a threshold, dp or seed_heuristic "
                             "cascade; auto chooses its own")
        missing = [m for m in chain if m not in table.models]
        if missing:
            raise ValueError(f"chain model(s) {', '.join(missing)} not in the log; it has "
                             f"{', '.join(table.models)}")
    cache = PredictorCache(table, predictor, pool=pool)
    if policy == "auto":
        return AutoCascade(lam, max_stages, predictor=predictor).fit(table, cache).policy_
    if chain is not None or policy == "seed_heuristic":
        return POLICIES[policy](None if chain is None else list(chain), lam,
                                predictor=predictor).fit(table, cache)
    return BestChain(policy, lam, max_stages, predictor=predictor).fit(table, cache).policy_
