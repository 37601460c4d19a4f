"""The cascade families fitted over a λ sweep, λ values in parallel (joblib).

Each λ is independent once the quality predictors exist, so they are fitted first, in
this process, and every worker receives the same fitted cache: the policies of every λ
then share one set of predictors, as they would sequentially.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from ladder.policies.auto import AutoCascade
from ladder.policies.base import resolve_chain
from ladder.policies.chains import DP_CANDIDATES, BestChain, candidate_chains
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import RouterCache
from ladder.policies.stages import PredictorCache
from ladder.runlog.table import QueryTable


def fit_at(lam: float, cache: PredictorCache, families: Sequence[str], max_stages: int,
           predictor: str, routers: RouterCache | None = None) -> dict[str, BaseEstimator]:
    """The cascade families at one λ, on the cache's training table (the very object its
    out-of-fold scores belong to, also after a trip to a worker process). Explicit data
    flow: dp climbs the threshold search's best chains, auto reuses both and the routed
    cascade (fitted when `routers` is given: the log has prompts)."""
    train = cache.train
    with threadpool_limits(1, "blas"):
        threshold = BestChain("threshold", lam, max_stages, predictor=predictor).fit(train, cache)
        dp = BestChain("dp", lam, max_stages, chains=threshold.ranking_[:DP_CANDIDATES],
                       predictor=predictor).fit(train, cache)
        fitted = {"threshold": threshold, "dp": dp}
        if routers is not None and {"routed", "auto"} & set(families):
            fitted["routed"] = RoutedCascade(lam, max_stages, predictor).fit(train, cache,
                                                                               routers)
        if "auto" in families:
            reuse = {("threshold", 1.0, False): threshold, ("dp", 1.0, False): dp}
            fitted["auto"] = AutoCascade(lam, max_stages, predictor=predictor,
                                         route=False).fit(train, cache, reuse,
                                                          fitted.get("routed"))
        return fitted


def prefit(train: QueryTable, cache: PredictorCache, max_stages: int) -> None:
    """Fit the predictor of every chain prefix any search may use, once."""
    for chain in candidate_chains(train.models, max_stages):
        cache.scores(train, resolve_chain(train, chain))


def sweep(train: QueryTable, cache: PredictorCache, lambdas: Sequence[float],
          families: Sequence[str], max_stages: int, predictor: str, n_jobs: int | None = None,
          done: Callable[[float], None] | None = None,
          routers: RouterCache | None = None) -> Iterator[dict[str, BaseEstimator]]:
    """Per λ (in order), the fitted cascade families. n_jobs: worker processes (default:
    every core, at most one per λ); done(λ) is called as each λ finishes; routers: the
    router variants fitted on train, for the routed cascade (and auto's routed option)."""
    prefit(train, cache, max_stages)
    jobs = min(n_jobs or os.cpu_count() or 1, len(lambdas))
    shared = cache.fitted_only() if jobs > 1 else cache  # the caller goes on using `cache`
    tasks = (delayed(fit_at)(lam, shared, families, max_stages, predictor, routers)
             for lam in lambdas)
    results = (Parallel(n_jobs=jobs, return_as="generator")(tasks) if jobs > 1
               else (task[0](*task[1], **task[2]) for task in tasks))
    for lam, fitted in zip(lambdas, results, strict=True):
        if done:
            done(lam)
        yield fitted
