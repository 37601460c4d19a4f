"""A full evaluation of one small real log with its frontier metrics pinned.

Any change to the predictors, the tuning, the chain search or the frontier maths moves
these numbers: a deliberate change updates them and says why in its commit; an accidental
one fails here.
"""

from __future__ import annotations

import pytest

from ladder.evaluate.experiment import evaluate
from ladder.evaluate.split import split_table
from ladder.runlog import QueryTable, load_runlog

# Zellinger TriviaQA, three models, 4 λ values + 0, chains of up to 2: (AIQ, cost@98%)
PINNED = {
    "fixed": (0.9044835904179154, 0.4487280914716311),
    "threshold": (0.9224779786295209, 0.20145643230726704),
    "dp": (0.9204960776444223, 0.2052935316085929),
    "auto": (0.922294395423064, 0.20305630119956175),
}


def test_triviaqa_three_models_frontier_is_pinned(shared_data) -> None:
    log = load_runlog(shared_data / "zellinger-cascades")
    table = QueryTable.from_runlog(log, models=["llama3.2-3b", "gpt-4o-mini", "llama3.1-70b"],
                                   benchmark="triviaqa")
    train, test, _ = split_table(table)
    summary = evaluate(train, test, families=tuple(PINNED), n_lambdas=4, max_stages=2,
                       n_resamples=0).summary
    for family, (aiq, cost_at_98) in PINNED.items():
        assert summary[family]["aiq"] == pytest.approx(aiq, abs=1e-9), family
        assert summary[family]["cost_at_98"] == pytest.approx(cost_at_98, abs=1e-9), family
