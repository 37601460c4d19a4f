"""Fit one deployable policy on a run log (what `ladder fit` and the demo run)."""

from __future__ import annotations

from collections.abc import Sequence

from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import ChainPolicy
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import QueryTable

POLICIES = {"threshold": ThresholdCascade, "dp": DPCascade, "seed_heuristic": SeedHeuristic}


def fit_policy(table: QueryTable, policy: str = "dp", lam: float = 0.0,
               chain: Sequence[str] | None = None, max_stages: int = 3,
               predictor: str = "logistic") -> ChainPolicy:
    """A cascade of family `policy` at trade-off λ. Without `chain`, threshold and dp search
    every cost-ordered chain of up to `max_stages` models (judged on held-out folds of
    `table`); seed_heuristic climbs the whole ladder."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy '{policy}'; choose one of {', '.join(POLICIES)}")
    if lam < 0:
        raise ValueError(f"λ must be ≥ 0, got {lam}")
    if chain is not None:
        missing = [m for m in chain if m not in table.models]
        if missing:
            raise ValueError(f"chain model(s) {', '.join(missing)} not in the log; it has "
                             f"{', '.join(table.models)}")
    if chain is not None or policy == "seed_heuristic":
        return POLICIES[policy](None if chain is None else list(chain), lam,
                                predictor=predictor).fit(table)
    return BestChain(policy, lam, max_stages, predictor=predictor).fit(table).policy_
