"""Option margin and entropy: hand-checked values, then every hop a signal makes from the
backend to a live decision (run log, validation, QueryTable, replay, runtime table, features)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ladder.backends.base import Backend, Generation, OptionScores, Usage, option_signals
from ladder.backends.fake import FakeBackend
from ladder.backends.replay import ReplayBackend
from ladder.collect import collect
from ladder.config import Price
from ladder.rung import Rung
from ladder.runlog import QueryTable, RunLogError, load_runlog, validate_runlog
from ladder.runlog.table import SIGNAL_COLUMNS
from ladder.runtime import live_table, record
from ladder.signals import feature_names, stage_features
from ladder.tasks import Item

# totals [-1, -2, -4]: e^-1, e^-2, e^-4 = 0.367879, 0.135335, 0.018316 (sum 0.521530)
SHARES = (0.705385, 0.259496, 0.035119)
MARGIN = 0.705385 - 0.259496
# ln p = total - ln 0.521530 = total + 0.650988; -(Σ p ln p) = 0.246186 + 0.350061 + 0.117614
# = 0.713861, over ln 3 = 1.098612
ENTROPY = 0.649789


def test_option_signals_hand_checked() -> None:
    s = option_signals(np.array([-2.0, -1.0, -4.0]))  # the best need not come first
    assert s.best == 1
    assert s.confidence == pytest.approx(SHARES[0], abs=1e-6)
    assert s.margin == pytest.approx(MARGIN, abs=1e-6)
    assert s.entropy == pytest.approx(ENTROPY, abs=1e-6)


@pytest.mark.parametrize(
    ("totals", "margin", "entropy"),
    [
        ([-1.0, -1.0, -1.0, -1.0], 0.0, 1.0),  # uniform: no margin, full entropy
        ([0.0, -800.0], 1.0, 0.0),  # the runner-up underflows to 0: 0 log 0 = 0
        ([-3.0], 1.0, 0.0),  # one option: nothing competes
    ],
)
def test_option_signals_extremes(totals: list[float], margin: float, entropy: float) -> None:
    s = option_signals(np.array(totals))
    assert s.margin == pytest.approx(margin) and s.entropy == pytest.approx(entropy)
    assert 0.0 <= s.entropy <= 1.0 and 0.0 <= s.margin <= 1.0


class Scored(Backend):
    """Fixed option token log-probabilities; totals [-1, -2, -4]."""

    TOKENS = ((-0.5, -0.5), (-2.0,), (-1.0, -1.0, -2.0))

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        return Generation("b", (-0.1, -0.2), Usage(3, 2, 0.0))

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        return OptionScores(self.TOKENS, Usage(9, 0, 0.0))


def test_choose_fills_the_signals_from_the_option_scores() -> None:
    item = Item("q", "pick one", "choice", ("a", "b", "c"), "a")
    out = asyncio.run(Scored().answer(item))
    assert out.answer == "a"
    assert out.confidence == pytest.approx(SHARES[0], abs=1e-6)
    assert out.margin == pytest.approx(MARGIN, abs=1e-6)
    assert out.entropy == pytest.approx(ENTROPY, abs=1e-6)
    # logprob_mean is already the chosen option's length-normalised log-likelihood
    assert out.logprob_mean == pytest.approx(-1.0 / 2)
    assert out.signals()["margin"] == out.margin and out.signals()["entropy"] == out.entropy


def test_generated_answers_have_no_option_signals() -> None:
    backend = Scored()
    backend.scores_options = False  # a chat API: the choice item is answered by generation
    for item in (Item("q", "say b", "short", reference="b"),
                 Item("q", "pick", "choice", ("a", "b"), "b")):
        out = asyncio.run(backend.answer(item))
        assert out.answer == "b"
        assert math.isnan(out.margin) and math.isnan(out.entropy)


def _tiny_log(**columns: list) -> dict[str, list]:
    return {"query_id": ["q1", "q1", "q2", "q2"], "model": ["s", "b", "s", "b"],
            "quality": [0, 1, 1, 1], "cost": [1, 2, 1, 2], **columns}


@pytest.mark.parametrize("column", ["margin", "entropy"])
@pytest.mark.parametrize("bad", [1.5, -0.01])
def test_margin_and_entropy_must_lie_in_the_unit_interval(column: str, bad: float) -> None:
    good = validate_runlog(pd.DataFrame(_tiny_log(**{column: [0.2, None, 1.0, 0.0]})))
    assert np.isnan(good[column].iloc[1])
    with pytest.raises(RunLogError, match=f"column '{column}': row 2 .* outside"):
        validate_runlog(pd.DataFrame(_tiny_log(**{column: [0.2, None, bad, 0.0]})))


def _items(n: int = 40) -> list[Item]:
    items = [Item(f"c{k}", f"choice question {k}?", "choice",
                  tuple(f"o{k}-{j}" for j in range(3)), f"o{k}-{k % 3}") for k in range(n)]
    return [*items, Item("g0", "short question?", "short", reference="x")]


def _rungs(items: list[Item]) -> dict[str, Rung]:
    truths = {i.prompt: i.reference for i in items}
    return {name: Rung(name, FakeBackend(truths, skill=skill, seed=seed), Price(per_call=cost))
            for name, skill, seed, cost in (("small", 0.5, 3, 1.0), ("large", 0.9, 4, 5.0))}


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Item], Path, QueryTable]:
    items = _items()
    path = tmp_path_factory.mktemp("log") / "log.jsonl"
    collect(items, _rungs(items), path)
    return items, path, QueryTable.from_runlog(load_runlog(path))


def test_collected_log_carries_the_signals(logged) -> None:
    _, path, table = logged
    df = load_runlog(path)
    choice = df["query_id"] != "g0"
    for name in ("margin", "entropy"):
        values = df.loc[choice, name].to_numpy()
        assert np.all((values >= 0) & (values <= 1)) and values.std() > 0
        assert df.loc[~choice, name].isna().all()  # generated: not written, read back NaN
        assert np.isnan(table.signals[name][list(table.query_ids).index("g0")]).all()


def test_live_rows_equal_the_logged_ones(logged) -> None:
    """A live rung (the model itself, or replayed from the log) writes exactly the row the
    training table has, so the predictors see the same features live as in training."""
    items, path, table = logged
    live_rungs = _rungs(items)
    replayed = {m: ReplayBackend(path, m) for m in table.models}
    for item in items:
        k = list(table.query_ids).index(item.id)
        for source in ("live", "replay"):
            live, codes = live_table(item, table.models, ("answers",)), {}
            for stage, model in enumerate(table.models):
                if source == "live":
                    output, _ = asyncio.run(live_rungs[model].run(item))
                else:
                    output = asyncio.run(replayed[model].answer(item))
                record(live, stage, output, codes)
            for name in SIGNAL_COLUMNS:
                np.testing.assert_array_equal(live.signals[name][0], table.signals[name][k],
                                              err_msg=f"{source} {item.id} {name}")


def test_stage_features_include_margin_and_entropy(logged) -> None:
    table = logged[2]
    chain = [0, 1]
    names = feature_names(table, chain, 1)
    X = stage_features(table, chain, 1)
    for j, model in enumerate(table.models):
        for name in ("margin", "entropy"):
            np.testing.assert_array_equal(X[:, names.index(f"{model}:{name}")],
                                          table.signals[name][:, j])
