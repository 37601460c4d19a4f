"""`auto`: the cascade ladder deploys unless told otherwise.

For one λ it fits the candidate families and options — threshold and DP cascades over
the best chains, with plug-in weights α (theory.md §9) and with or without the answer
vote — and, when the log has prompts, the routed cascade (a router picks the first rung,
which contains the plain router) — and keeps the one whose objective on held-out folds
of the training split is best. The single model it predicts best is always a candidate,
so its top end cannot fall below that model. Nothing is chosen on test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone

from ladder.policies.base import Outcome, best_model
from ladder.policies.baselines import FixedModel
from ladder.policies.chains import DP_CANDIDATES, BestChain
from ladder.policies.routed import RoutedCascade
from ladder.policies.stages import ALPHAS, PredictorCache
from ladder.runlog.table import QueryTable


def fixed_outcome(table: QueryTable, cache: PredictorCache, model: int) -> Outcome:
    """Always answering with one model, judged like the cascades (labels, and p̂ where a
    label is missing); no fit is involved, so it needs no folds to be held out."""
    index = np.full(table.n, model)
    return Outcome(index, index, cache.targets(table, 1.0)[:, model], table.cost[:, model])


class AutoCascade(BaseEstimator):
    """The best of the cascade families and options at one λ, by held-out objective.

    alphas: plug-in weights tried; vote: also try the answer vote on the best cascade
    found (needs answers in the log); max_stages: longest chain searched besides the full
    ladder; route: also try the routed cascade (needs prompts in the log).
    Fitted: `policy_` (the chosen policy), `choice_` (its family and options) and
    `candidates_` (every candidate's held-out objective, for the report).
    """

    family = "auto"

    def __init__(self, lam: float = 0.0, max_stages: int = 3, alphas: Sequence[float] = ALPHAS,
                 vote: bool = True, predictor: str = "logistic", route: bool = True):
        self.lam = lam
        self.max_stages = max_stages
        self.alphas = alphas
        self.vote = vote
        self.predictor = predictor
        self.route = route

    def fit(self, table: QueryTable, cache: PredictorCache | None = None,
            fitted: Mapping[tuple[str, float, bool], BestChain] | None = None,
            routed: BaseEstimator | None = None) -> AutoCascade:
        """fitted: candidates already fitted at this λ on the same cache, keyed by (kind,
        alpha, vote) — the evaluation's threshold and dp families — reused, not refitted;
        routed: the routed cascade at this λ, likewise (fitted here when `route` is set and
        the log has prompts)."""
        cache = cache or PredictorCache(table, self.predictor)
        fitted = dict(fitted or {})
        if routed is None and self.route and table.prompts is not None:
            routed = RoutedCascade(self.lam, self.max_stages, self.predictor,
                                   self.alphas).fit(table, cache)
        for alpha in self.alphas:
            key = ("threshold", alpha, False)
            if key not in fitted:
                fitted[key] = BestChain("threshold", self.lam, self.max_stages,
                                        predictor=self.predictor, alpha=alpha).fit(table, cache)
            if ("dp", alpha, False) not in fitted:
                chains = fitted[key].ranking_[:DP_CANDIDATES]
                fitted[("dp", alpha, False)] = BestChain(
                    "dp", self.lam, self.max_stages, chains=chains, predictor=self.predictor,
                    alpha=alpha).fit(table, cache)
        predicted = cache.targets(table, 0.0).mean(axis=0)
        top = best_model(predicted, table.mean_cost())
        single = FixedModel(table.models[top]).fit(table)
        single.held_out_ = fixed_outcome(table, cache, top)
        candidates: list[tuple[float, dict, BaseEstimator]] = [(
            single.held_out_.objective(self.lam), {"kind": "fixed", "chain": [table.models[top]]},
            single,
        )]
        for (kind, alpha, vote), policy in fitted.items():
            choice = {"kind": kind, "alpha": alpha, "vote": vote, "chain": list(policy.chain_)}
            candidates.append((policy.train_objective_, choice, policy.policy_))
        best = max(candidates[1:], key=lambda c: c[0])
        if self.vote and table.answers is not None and len(best[1]["chain"]) > 1:
            # the vote changes only which answer is returned: tried on the best chain found
            # (a search of its own per option would triple the fitting time)
            voted = clone(best[2]).set_params(vote=True).fit(table, cache)
            candidates.append((voted.train_objective_, {**best[1], "vote": True}, voted))
        if routed is not None:  # a router picks the first rung (contains router and cascade)
            candidates.append((routed.train_objective_, {
                "kind": "routed", "alpha": None, "vote": False, "chain": list(routed.chain_),
                "start_price": routed.start_price_}, routed))
        scores = np.array([c[0] for c in candidates])
        winner = int(np.argmax(scores))  # ties: the first, the simplest (fixed comes first)
        self.train_objective_, self.choice_, self.policy_ = candidates[winner]
        self.candidates_ = [{**c[1], "objective": float(c[0])} for c in candidates]
        self.chain_ = tuple(self.choice_["chain"])
        self.held_out_ = self.policy_.held_out_
        return self

    def replay(self, table: QueryTable, cache: PredictorCache | None = None) -> Outcome:
        return self.policy_.replay(table, cache)
