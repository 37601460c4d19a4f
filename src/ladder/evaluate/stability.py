"""How much a family's result depends on which ~300 training queries it was fitted on.

The bootstrap intervals resample the test queries with the policies held fixed; this
refits every family on `n_refits` seeded subsamples of the training split (80%, without
replacement, so no query sits on both sides of a held-out fold) and replays each refit
on the same test split: how many reach 98% of the best model, their median cost@98%,
and how often the quality target chosen on train is met on test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ladder.runlog.table import QueryTable

SUBSAMPLE = 0.8


def refit_subsamples(evaluate: Callable[..., object], train: QueryTable, test: QueryTable,
                     families: Sequence[str], n_refits: int, pool: QueryTable | None = None,
                     seed: int = 0, **settings: object) -> dict[str, dict]:
    """Per family: refits, how many reach 98%, median cost@98% of those, target met."""
    rng = np.random.default_rng(seed)
    size = round(SUBSAMPLE * train.n)
    reached: dict[str, list[float]] = {f: [] for f in families}
    met: dict[str, int] = dict.fromkeys(families, 0)
    for _ in range(n_refits):
        keep = np.sort(rng.choice(train.n, size, replace=False))
        sub = train.rows(keep)
        dropped = np.setdiff1d(train.query_ids, sub.query_ids)
        sub_pool = None if pool is None else pool.rows(~np.isin(pool.query_ids, dropped))
        refit = evaluate(sub, test, families=families, pool=sub_pool, n_resamples=0,
                         n_refits=0, **settings)
        for family in [f for f in families if f in refit.summary]:  # a family may be left out
            summary = refit.summary[family]
            if summary["cost_at_98"] is not None:
                reached[family].append(summary["cost_at_98"])
            met[family] += bool(summary.get("target_98", {}).get("met"))
    return {
        family: {
            "refits": n_refits, "subsample": SUBSAMPLE, "reached_98": len(reached[family]),
            "median_cost_at_98": float(np.median(reached[family])) if reached[family] else None,
            "target_98_met": met[family] if family in ("threshold", "dp", "auto", "moa")
            else None,
        }
        for family in families
    }
