"""Best-subsequence cascades: which models to put on the ladder, chosen on training data.

Every cost-ordered subsequence of the pool up to `max_stages` long (and the whole
ladder) is a candidate. For one λ, a threshold cascade is fitted on each candidate
and the one with the best training objective wins; DP cascades are fitted on the
`dp_candidates` best chains of that search and the best of those wins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

from sklearn.base import BaseEstimator

from ladder.policies.base import Outcome
from ladder.policies.dp import DPCascade
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog.table import QueryTable

DP_CANDIDATES = 3  # best threshold chains a DP is fitted on


def candidate_chains(models: tuple[str, ...], max_stages: int) -> Iterator[tuple[str, ...]]:
    """Cost-ordered subsequences of the ladder with 1..max_stages models, then the full ladder."""
    k = len(models)
    for length in range(1, min(max_stages, k) + 1):
        for chosen in combinations(range(k), length):
            yield tuple(models[i] for i in chosen)
    if max_stages < k:
        yield models


class BestChain(BaseEstimator):
    """A cascade over the best chain of models for a given λ.

    kind: 'threshold' or 'dp'; max_stages: longest subsequence searched (besides the full
    ladder); dp_candidates: how many of the best threshold chains the DP is fitted on;
    dp_targets: the DP regression targets tried on each ('value', 'realized'); chains: the
    DP's candidate chains when already ranked (e.g. a threshold BestChain's `ranking_` at the
    same λ), skipping the threshold search; alpha, vote: the cascades' plug-in weight and
    answer vote. Every choice is made on the training split by held-out-fold objective.
    """

    def __init__(self, kind: str = "threshold", lam: float = 0.0, max_stages: int = 3,
                 dp_candidates: int = DP_CANDIDATES,
                 dp_targets: tuple[str, ...] = ("value", "realized"),
                 chains: Sequence[Sequence[str]] | None = None, predictor: str = "logistic",
                 alpha: float = 1.0, vote: bool = False):
        self.kind = kind
        self.lam = lam
        self.max_stages = max_stages
        self.dp_candidates = dp_candidates
        self.dp_targets = dp_targets
        self.chains = chains
        self.predictor = predictor
        self.alpha = alpha
        self.vote = vote

    @property
    def family(self) -> str:
        return self.kind

    def fit(self, table: QueryTable, cache: PredictorCache | None = None) -> BestChain:
        if self.kind not in ("threshold", "dp"):
            raise ValueError(f"unknown cascade kind '{self.kind}'; choose threshold or dp")
        cache = cache or PredictorCache(table, self.predictor)
        if self.kind == "dp" and self.chains is not None:
            candidates = [tuple(c) for c in self.chains]
        else:
            fitted = [
                ThresholdCascade(list(chain), self.lam, self.predictor, self.alpha, self.vote)
                .fit(table, cache)
                for chain in candidate_chains(table.models, self.max_stages)
            ]
            fitted.sort(key=lambda p: p.train_objective_, reverse=True)
            self.ranking_ = [p.chain_ for p in fitted]
            candidates = self.ranking_[: self.dp_candidates]
        if self.kind == "dp":
            fitted = [
                DPCascade(list(chain), self.lam, self.predictor, target=target, alpha=self.alpha,
                          vote=self.vote)
                .fit(table, cache)
                for chain in candidates
                for target in self.dp_targets
            ]
            fitted.sort(key=lambda p: p.train_objective_, reverse=True)
        self.policy_ = fitted[0]
        self.chain_ = self.policy_.chain_
        self.train_objective_ = self.policy_.train_objective_
        self.held_out_ = self.policy_.held_out_
        return self

    def replay(self, table: QueryTable, cache: PredictorCache | None = None) -> Outcome:
        return self.policy_.replay(table, cache)
