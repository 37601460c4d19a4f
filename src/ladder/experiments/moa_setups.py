"""The Pyramid MoA setups (seed 004) that `profile` and `monotonicity` both measure, and the
one computation per setup they share.

A unit is a log's split: "mot" (mot-cascade-date, a seeded 50/50 split: it has none) or
"zellinger/<benchmark>" (the log's split), with the layer 1 and oracles of the seed's
pyramid: the log's cheap models vote, a P_fail predictor fitted on train decides, the
oracle answers the escalated queries. Everything is fitted on train and read on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ladder.evaluate.intervals import Resamples, paired_mean_interval
from ladder.evaluate.moa_profile import performance_profile, reference_points
from ladder.experiments.data import DataDir
from ladder.experiments.verdicts import ci
from ladder.policies.moa import PyramidMoA, layer_answer
from ladder.runlog import QueryTable

T = 0.4  # the seed's balanced point: escalate when P_fail > t
RESAMPLES = 1000
ZELLINGER = ("mmlu", "medmcqa", "triviaqa")
ZELLINGER_LAYER = ("llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "gpt-4o-mini")
ZELLINGER_ORACLES = ("llama3.1-405b", "gpt-4o")
MOT_LAYER, MOT_ORACLE = ("llama-2-13b", "gpt-3.5-turbo"), "gpt-4"


@dataclass(frozen=True)
class Setup:
    """One pyramid: a log (as the page names it), layer 1's members, the oracle, and the
    stem of its figure's file name."""

    log: str
    layer1: tuple[str, ...]
    oracle: str
    slug: str


def units(data: DataDir) -> list[str]:
    """mot when its log is there, then each Zellinger benchmark the seed's table has."""
    mot = ["mot"] if data.has("mot") else []
    return mot + [f"zellinger/{b}" for b in data.benchmarks("zellinger") if b in ZELLINGER]


def setups(unit: str) -> list[Setup]:
    """The pyramids of a unit: mot's one oracle, or both of the Zellinger benchmark's."""
    if unit == "mot":
        return [Setup("mot date", MOT_LAYER, MOT_ORACLE, "mot")]
    benchmark = unit.split("/", 1)[1]
    return [Setup(benchmark, ZELLINGER_LAYER, oracle, f"{benchmark}_{oracle}")
            for oracle in ZELLINGER_ORACLES]


def split(unit: str, data: DataDir) -> tuple[QueryTable, QueryTable, str]:
    """The unit's (train, test, how): the same split `data.evaluation` uses."""
    if unit == "mot":
        return data.split("mot")
    return data.split("zellinger", unit.split("/", 1)[1])


def _interval(d: dict) -> list[float | None]:
    return [d["low"], d["high"]]


def measure(setup: Setup, train: QueryTable, test: QueryTable) -> dict:
    """Fit the pyramid on train; on test its profile over t, the two single ends, and at
    t = T the monotonicity row with 90% bootstrap intervals (paired over test queries) of
    accuracy, saving against the oracle alone, ΔAcc against layer 1 alone and accuracy
    minus the oracle's."""
    policy = PyramidMoA(threshold=T, layer1=list(setup.layer1), oracle=setup.oracle).fit(train)
    profile = performance_profile(policy, test)
    row = next(r for r in profile if r["t"] == T)
    fixed = policy.replay(test)
    oracle = test.index(policy.oracle_)
    members = [test.index(m) for m in policy.layer1_]
    layer1 = test.quality[np.arange(test.n), layer_answer(test, members)]
    resamples = Resamples.draw(test.n, RESAMPLES, seed=0)
    accuracy = paired_mean_interval(resamples, fixed.quality, np.zeros(test.n))
    ratio = paired_mean_interval(resamples, fixed.cost, test.cost[:, oracle], ratio=True)
    gain = paired_mean_interval(resamples, fixed.quality, layer1)
    below = paired_mean_interval(resamples, fixed.quality, test.quality[:, oracle])
    return {
        "log": setup.log, "slug": setup.slug, "layer1": list(policy.layer1_),
        "oracle": policy.oracle_, "n_test": test.n,
        "calibration": policy.predictor_.calibration, "p_oracle_train": policy.p_oracle_,
        "imperfection_barrier": policy.imperfection_barrier_,
        "oracle_cost": policy.oracle_cost_, "references": reference_points(policy, test),
        "profile": profile,
        "at_t": {**row, "accuracy_ci": _interval(accuracy),
                 "savings_ci": [1 - ratio["high"], 1 - ratio["low"]],
                 "delta_acc_ci": _interval(gain),
                 "minus_oracle": below["point"], "minus_oracle_ci": _interval(below)},
    }


def measure_unit(unit: str, train: QueryTable, test: QueryTable) -> list[dict]:
    """Every setup of a unit, on its split."""
    return [measure(s, train, test) for s in setups(unit)]


def span(point: float | None, ends: list, spec: str = ".3f") -> str:
    """'point [low, high]' from a point and its [low, high] list (the setups' JSON shape)."""
    return ci({"point": point, "low": ends[0], "high": ends[1]}, spec)


def label(row: dict, with_layer: bool = True) -> str:
    """The setup's name on the page: "mmlu: a+b → oracle", or "mmlu → oracle"."""
    layer = f": {'+'.join(row['layer1'])}" if with_layer else ""
    return f"{row['log']}{layer} → {row['oracle']}"
