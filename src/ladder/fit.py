"""Fit one deployable policy on a run log (what `ladder fit` and the demo run)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from ladder.evaluate.experiment import lambda_grid
from ladder.evaluate.sweep import sweep
from ladder.policies.auto import AutoCascade, fixed_outcome
from ladder.policies.baselines import FixedModel
from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.moa import PyramidMoA
from ladder.policies.operating import (
    Candidates,
    OperatingPoint,
    choose_by_budget,
    choose_by_quality,
)
from ladder.policies.ppi import HumanAudit, human_audit
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import Router, router_cache
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog import RunLogError, load_runlog
from ladder.runlog.table import QueryTable

ALL_ROWS = "all"  # `ladder fit --split all`: fit on every row, whatever the split column says

POLICIES = {"auto": AutoCascade, "threshold": ThresholdCascade, "dp": DPCascade,
            "seed_heuristic": SeedHeuristic, "router": Router, "routed": RoutedCascade,
            "moa": PyramidMoA}
# Quality lies in [0, 1]: pricing the dearest model's mean cost at more than 10⁶ units of
# quality calls it worthless a million times over, and far beyond that λ·cost swamps
# q − λ·c in floating point or overflows (λ = 1e308). So λ·(dearest mean cost) ≤ 10⁶.
MAX_PRICE = 1e6


def check_lambda(lam: float, table: QueryTable) -> None:
    """Refuse a λ that is negative, NaN, infinite, or prices the dearest model's mean cost
    above MAX_PRICE quality units."""
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"λ must be a finite number ≥ 0, got {lam}")
    dearest = float(table.mean_cost().max())
    if lam * dearest > MAX_PRICE:
        raise ValueError(
            f"λ = {lam:g} prices the dearest model's mean cost ({dearest:.3g}) at "
            f"{lam * dearest:.3g} units of quality (in [0, 1]); λ·cost must be at most "
            f"{MAX_PRICE:g}, so λ ≤ {MAX_PRICE / dearest:.3g}"
        )


def check_chain(chain: Sequence[str], table: QueryTable) -> None:
    """A chain names models of the table once each, cheapest first (by mean cost on the
    rows fitted on): a cascade climbs from cheap to dear."""
    missing = [m for m in chain if m not in table.models]
    if missing:
        raise ValueError(f"chain model(s) {', '.join(missing)} not in the log; it has "
                         f"{', '.join(table.models)}")
    repeated = list(dict.fromkeys(m for m in chain if list(chain).count(m) > 1))
    if repeated:
        raise ValueError(f"chain model(s) {', '.join(repeated)} repeated; name each model once")
    cost = dict(zip(table.models, table.mean_cost(), strict=True))
    by_cost = sorted(chain, key=cost.__getitem__)
    if list(chain) != by_cost:  # the sort is stable: equal costs may come in either order
        shown = ", ".join(f"{m} {cost[m]:.3g}" for m in chain)
        raise ValueError(f"the chain must climb in ascending mean cost on the rows fitted on "
                         f"({shown}); order it {','.join(by_cost)}")


def fit_policy(table: QueryTable, policy: str = "auto", lam: float = 0.0,
               chain: Sequence[str] | None = None, max_stages: int = 3,
               predictor: str = "logistic", pool: QueryTable | None = None) -> BaseEstimator:
    """A deployable policy of family `policy` at trade-off λ, fitted on every row of `table`:
    a cascade, a router, a routed cascade, a pyramid, or for `auto` the one it chose.

    Unless the table's model order was given, the ladder is sorted by mean cost on these
    rows. Without `chain`, threshold and dp search every cost-ordered chain of up to
    `max_stages` models (judged on held-out folds of `table`); seed_heuristic climbs the
    whole ladder; moa's chain is its layer 1 then its oracle (default: chosen on folds).
    Routers (and auto's routed option) need the log's prompts. pool: several tasks'
    training queries to fit the predictors on with partial pooling.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy '{policy}'; choose one of {', '.join(POLICIES)}")
    table = table.by_cost()
    check_lambda(lam, table)
    if chain is not None:
        if policy in ("auto", "router", "routed"):
            raise ValueError(f"--chain fixes the models of a threshold, dp, seed_heuristic or "
                             f"moa policy; {policy} chooses its own")
        check_chain(chain, table)
    if policy in ("router", "routed") and table.prompts is None:
        raise ValueError(f"a {policy} policy reads the prompts, and the log has no 'prompt' "
                         "column")
    if policy == "moa":
        layer1, oracle = (None, None) if chain is None else (list(chain[:-1]), chain[-1])
        return PyramidMoA(lam, layer1=layer1, oracle=oracle).fit(table)
    if policy == "router":
        return Router(lam).fit(table)
    cache = PredictorCache(table, predictor,
                           pool=None if pool is None else pool.select_models(table.models))
    if policy == "auto":
        return AutoCascade(lam, max_stages, predictor=predictor).fit(table, cache).policy_
    if policy == "routed":
        return RoutedCascade(lam, max_stages, predictor).fit(table, cache)
    if chain is not None or policy == "seed_heuristic":
        return POLICIES[policy](None if chain is None else list(chain), lam,
                                predictor=predictor).fit(table, cache)
    return BestChain(policy, lam, max_stages, predictor=predictor).fit(table, cache).policy_


def _check_request(target: float | None, budget: float | None, delta: float) -> None:
    if (target is None) == (budget is None):
        raise ValueError("give exactly one of a quality target and a budget")
    if target is not None and not (0 < target <= 1):
        raise ValueError(f"the quality target must lie in (0, 1], got {target}")
    if budget is not None and not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"the budget must be a finite mean cost ≥ 0, got {budget}")
    if not 0 < delta < 1:
        raise ValueError(f"δ must lie in (0, 1), got {delta}")


@dataclass(frozen=True, eq=False)
class OperatingCandidates:
    """What an operating point is chosen among, on one training table (`table`, in ladder
    order): `auto` over the λ sweep and every single model (`policies`), their
    cross-fitted held-out outcomes (`calibration`), each model's per-query held-out
    quality (`reference`: labels, p̂ where missing) and out-of-fold predicted quality
    (`predicted`), and, when the labels are partly a judge's and partly a person's, the
    audit that corrects the judge (`ladder.policies.ppi`)."""

    table: QueryTable
    policies: list[BaseEstimator]
    calibration: Candidates
    reference: np.ndarray
    predicted: np.ndarray
    audit: HumanAudit | None = None

    def audited(self, labels: QueryTable) -> OperatingCandidates:
        """The same candidates, audited on `labels`: the same queries, whose labels name
        their sources and carry the judge's beside a person's where there are both (a
        person's labels then only test the candidates, they fit none)."""
        labels = labels.select_models(self.table.models)
        if not np.array_equal(labels.query_ids, self.table.query_ids):
            raise ValueError("audited: the labels must be of the candidates' training queries, "
                             "in their order")
        chosen = [policy.held_out_.chosen for policy in self.policies]
        return replace(self, audit=human_audit(labels, chosen, self.predicted))


def operating_candidates(table: QueryTable, *, n_lambdas: int = 20, max_stages: int = 3,
                         predictor: str = "logistic", pool: QueryTable | None = None,
                         n_jobs: int | None = None) -> OperatingCandidates:
    """The candidates of `fit_operating_point` (the λ sweep is the costly part: fitted
    once, a point can be chosen for several targets or with and without the audit).
    n_jobs: processes fitting λ values (default: every core)."""
    table = table.by_cost()
    cache = PredictorCache(table, predictor,
                           pool=None if pool is None else pool.select_models(table.models))
    lambdas = lambda_grid(table, n_lambdas)
    policies: list[BaseEstimator] = [
        fitted["auto"].policy_
        for fitted in sweep(table, cache, lambdas, ("auto",), max_stages, predictor, n_jobs,
                            routers=router_cache(table))]
    singles = [FixedModel(m).fit(table) for m in table.models]
    for index, single in enumerate(singles):
        single.held_out_ = fixed_outcome(table, cache, index)
    candidates = [*policies, *singles]
    calibration = Candidates.from_outcomes([p.held_out_ for p in candidates])
    return OperatingCandidates(table, candidates, calibration, cache.targets(table, 1.0),
                               cache.targets(table, 0.0)).audited(table)


def choose_operating_point(candidates: OperatingCandidates, *, target: float | None = None,
                           budget: float | None = None, absolute: bool = False,
                           delta: float = 0.1, correct: bool = True,
                           ) -> tuple[BaseEstimator, OperatingPoint]:
    """The certified point among `candidates` (see `fit_operating_point`); correct=False
    reads a judge's labels as the truth even where an audit could correct them."""
    _check_request(target, budget, delta)
    calibration = candidates.calibration
    if budget is not None:  # costs are observed, not labelled: nothing to correct
        point = choose_by_budget(calibration, budget, delta, mixtures=None)
    else:
        point = choose_by_quality(calibration, target, delta, mixtures=None,
                                  reference=None if absolute else candidates.reference,
                                  audit=candidates.audit if correct else None)
    return candidates.policies[point.index], point


def fit_operating_point(table: QueryTable, *, target: float | None = None,
                        budget: float | None = None, absolute: bool = False,
                        delta: float = 0.1, n_lambdas: int = 20, max_stages: int = 3,
                        predictor: str = "logistic", pool: QueryTable | None = None,
                        correct: bool = True) -> tuple[BaseEstimator, OperatingPoint]:
    """The cheapest `auto` policy (or single model) certified on `table` to reach a quality
    target — `target` × the best model's quality, or an absolute accuracy when `absolute`
    — or the most accurate one whose mean cost stays within `budget`, each with
    probability ≥ 1 − δ (Learn-then-Test on cross-fitted held-out outcomes, theory.md
    §10). Users think in targets and budgets; this finds the λ.

    When the table's labels are partly a judge's (`label_source`) and some queries carry
    a person's labels with the judge's beside them (`judge_quality`), the quality tests
    are prediction-powered (`ladder.policies.ppi`): the judge's bias is estimated on
    those queries and the promise is about true quality (`point.human_labels` says how
    many were used; correct=False turns this off)."""
    _check_request(target, budget, delta)  # before the sweep, which takes a while
    candidates = operating_candidates(table, n_lambdas=n_lambdas, max_stages=max_stages,
                                      predictor=predictor, pool=pool)
    return choose_operating_point(candidates, target=target, budget=budget,
                                  absolute=absolute, delta=delta, correct=correct)


def training_rows(table: QueryTable, split: str | None = None) -> tuple[QueryTable, str]:
    """The rows a deployable policy is fitted on: the `split` rows (default: train when the
    log has train rows, else every row, `ALL_ROWS`), and which split that was."""
    labels = set(table.split) if table.split is not None else set()
    if split is None:
        split = "train" if "train" in labels else ALL_ROWS
    if split == ALL_ROWS:
        return table, split
    if split not in labels:
        raise RunLogError(f"--split {split}: the log's split column has "
                          f"{', '.join(sorted(map(str, labels))) or 'no values'}; "
                          f"--split {ALL_ROWS} fits on every row", "split")
    return table.rows(table.split == split), split


def fit_from_runlog(path: str | Path, policy: str = "auto", *, lam: float | None = None,
                    budget: float | None = None, target: float | None = None) -> BaseEstimator:
    """A deployable policy fitted on a run log's training rows, at λ (default 0), or at the
    operating point certified for a budget or a quality target (share of the best model)."""
    table, _ = training_rows(QueryTable.from_runlog(load_runlog(path)))
    if budget is not None or target is not None:
        return fit_operating_point(table, target=target, budget=budget)[0]
    return fit_policy(table, policy, 0.0 if lam is None else lam)
