"""The learning-curve experiment: seeded train-only subsamples, and findings whose verdicts
follow the stated rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ladder.experiments import learning
from ladder.experiments.base import FAILS, HOLDS
from ladder.experiments.data import DataDir
from ladder.experiments.learning import Learning, sizes, subsample


@pytest.fixture(scope="module")
def mmlu(shared_data):
    train, test, _ = DataDir(shared_data).split("zellinger", "mmlu", list(learning.LADDER))
    return train, test


def test_subsample_is_seeded(mmlu) -> None:
    train, _ = mmlu
    once, again = subsample(train, 30, 0), subsample(train, 30, 0)
    assert list(once.query_ids) == list(again.query_ids)
    assert set(once.query_ids) != set(subsample(train, 30, 1).query_ids)


@pytest.mark.parametrize("size", [10, 30, 100, 300])
def test_subsample_holds_train_rows_only_and_the_right_number(mmlu, size: int) -> None:
    train, test = mmlu
    few = subsample(train, size, 3)
    assert few.n == min(size, train.n) == len(set(few.query_ids))  # without replacement
    assert set(few.query_ids) <= set(train.query_ids)
    assert not set(few.query_ids) & set(test.query_ids)


def test_sizes_are_capped_at_the_train_split() -> None:
    assert sizes(285) == [10, 30, 100, 285]
    assert sizes(1000) == [10, 30, 100, 300]
    assert sizes(50) == [10, 30, 50]


def _result(gain: float, rate: float, seeds: int = 3) -> dict:
    """A unit's results: threshold AIQ around 0.7, auto pooled `gain` above it, and auto's
    shortfall from its whole-split AIQ falling like n^rate (small per-seed noise)."""
    grid = [10, 30, 100, 300]
    curves: dict = {"auto": {"alone": {}, "pooled": {}}, "threshold": {"alone": {}}}
    for n in grid:
        last = n == grid[-1]
        draws = range(1 if last else seeds)
        noise = [1 + 0.03 * ((s + n) % 3) for s in draws]
        alone = [0.8 if last else 0.8 - 0.3 * n ** rate * f for f in noise]
        base = [0.7 * f for f in noise]
        curves["threshold"]["alone"][str(n)] = {"aiq": base, "cost_at_98": [None] * len(base)}
        curves["auto"]["alone"][str(n)] = {"aiq": alone, "cost_at_98": [0.5] * len(alone)}
        curves["auto"]["pooled"][str(n)] = {
            "aiq": [b * (1 + gain + 0.01 * s) for s, b in enumerate(base)],
            "cost_at_98": [0.4, None, 0.45][: len(base)]}
    return {"n_train": 300, "n_test": 1000, "split": "test", "sizes": grid,
            "seeds": list(range(seeds)), "curves": curves}


def _findings(results: dict, tmp_path) -> dict:
    section = Learning().render(results, tmp_path / "learning", tmp_path / "results.md")
    assert "learning/learning-mmlu.png" in section.markdown
    assert "| auto | pooled |" in section.markdown
    return {f.claim: f.verdict for f in section.findings}


def test_a_large_gain_holds_and_a_slow_rate_fails(tmp_path) -> None:
    results = {"mmlu": _result(0.20, -0.2), "medmcqa": _result(0.25, -0.1)}
    assert _findings(results, tmp_path) == {"few-labels": HOLDS, "samples": FAILS}


def test_no_gain_fails_and_a_fast_rate_holds(tmp_path) -> None:
    results = {"mmlu": _result(0.0, -1.0), "medmcqa": _result(0.01, -0.9)}
    assert _findings(results, tmp_path) == {"few-labels": FAILS, "samples": HOLDS}


@pytest.mark.slow
def test_a_reduced_unit_on_real_data(shared_data, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(learning, "SIZES", (10, 300))
    monkeypatch.setattr(learning, "SEEDS", (0, 1))
    data = DataDir(shared_data)
    assert Learning().units(data) == ["mmlu", "medmcqa", "triviaqa"]
    result = json.loads(json.dumps(Learning().run("triviaqa", data, tmp_path)))
    assert result["sizes"] == [10, 300]
    auto = result["curves"]["auto"]
    assert len(auto["pooled"]["10"]["aiq"]) == 2 and len(auto["alone"]["300"]["aiq"]) == 1
    assert "pooled" not in result["curves"]["router"]
    assert all(0 < a < 1 for a in auto["alone"]["10"]["aiq"])
    assert (tmp_path / "learning-triviaqa.png").stat().st_size > 0
    section = Learning().render({"triviaqa": result}, tmp_path, tmp_path / "results.md")
    assert [f.claim for f in section.findings] == ["few-labels", "samples"]
    assert np.isfinite(learning.gains(result, 10)).all()
