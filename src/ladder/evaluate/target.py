"""A quality target chosen in advance (theory.md §10), replayed on test.

The frontier metrics read an operating point off the test hull; a deployer must pick it
before seeing test. Here the point is chosen on train: the candidates are a family's
policies over the λ sweep, with their cross-fitted held-out outcomes on the training
queries (thresholds or continuation values refitted without each fold, predictions out
of fold), and every single model; Learn-then-Test picks the cheapest one whose quality
is at least `fraction` × the best model's with probability ≥ 1 − δ. Then that point is
replayed on test. The held-out outcomes are those the families' own chain and option
searches were judged on, so the promise is approximate by that selection; the repeated
train resamples of the results page measure how often it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ladder.policies.base import Outcome, best_model, single_model
from ladder.policies.operating import Candidates, choose_by_quality
from ladder.runlog.table import QueryTable

FRACTION = 0.98
DELTA = 0.1


def quality_point(held_out: Sequence[Outcome], on_test: Sequence[Outcome], names: Sequence[str],
                  train_judge: np.ndarray, train: QueryTable, test: QueryTable,
                  fraction: float = FRACTION, delta: float = DELTA) -> dict:
    """The certified point among a family's policies (`held_out` on train, `on_test` on
    test, `names` to report them) and the single models; train_judge: (n, k) per-query
    quality of each model on train (labels, p̂ where missing)."""
    rows = np.arange(train.n)
    singles = [Outcome(np.full(train.n, m), np.full(train.n, m), train_judge[rows, m],
                       train.cost[:, m]) for m in range(train.k)]
    calibration = Candidates.from_outcomes([*held_out, *singles])
    point = choose_by_quality(calibration, fraction, delta, reference=train_judge,
                              mixtures=None)
    tested = Candidates.from_outcomes([*on_test, *(single_model(test, m)
                                                   for m in range(test.k))])
    quality, cost = point.realised(tested)
    best = best_model(test.mean_quality(), test.mean_cost())
    labels = [*names, *(f"fixed {m}" for m in test.models)]
    return {
        "target": fraction, "delta": delta, "promise": point.promise,
        "fallback": point.fallback, "chosen": labels[point.index],
        "train_quality": point.quality, "train_cost": point.cost,
        "test_quality": quality, "test_cost": cost,
        "test_cost_share": (float(cost / test.mean_cost()[best])
                            if test.mean_cost()[best] > 0 else None),
        "test_target": fraction * float(test.mean_quality()[best]),
        "met": bool(quality >= fraction * test.mean_quality()[best]),
    }
