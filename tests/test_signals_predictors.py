"""Stage features on hand-made answers, and the quality predictors on synthetic problems."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from ladder.predictors import KINDS, QualityPredictor, _scores
from ladder.runlog import QueryTable
from ladder.signals import PER_STAGE, feature_names, stage_features

NAN = float("nan")

# answers of models a (cost 1), b (cost 2), c (cost 3); None = no answer extracted.
ANSWERS = {
    "q1": ("x", "x", "x"),
    "q2": ("x", "y", "x"),
    "q3": ("x", "y", "z"),
    "q4": ("x", "x", "y"),
    "q5": (None, "x", "y"),
    "q6": ("x", "x", None),
    "q7": (None, None, None),
}
CONFIDENCE = {"a": 0.5, "b": 0.9, "c": 1.0}


def runlog(with_answers: bool = True, with_prompt: bool = False) -> pd.DataFrame:
    rows = []
    for q, answers in ANSWERS.items():
        # log given in reverse cost order: from_runlog must sort the ladder by mean cost
        for m, cost in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
            row = {
                "query_id": q, "model": m, "quality": 1.0, "cost": cost,
                "confidence": CONFIDENCE[m],
            }
            if with_answers:
                row["answer"] = answers["abc".index(m)]
            if with_prompt:
                row["prompt"] = "p" * 9
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> QueryTable:
    t = QueryTable.from_runlog(runlog())
    assert t.models == ("a", "b", "c")
    assert list(t.query_ids) == list(ANSWERS)
    return t


def column(table: QueryTable, chain: list[int], stage: int, name: str) -> np.ndarray:
    names = feature_names(table, chain, stage)
    return stage_features(table, chain, stage)[:, names.index(name)]


@pytest.mark.parametrize("with_answers", [True, False])
@pytest.mark.parametrize("chain", [[0, 1, 2], [0, 2], [2, 1, 0], [1]])
def test_feature_shapes_match_names(with_answers: bool, chain: list[int]) -> None:
    t = QueryTable.from_runlog(runlog(with_answers))
    for stage in range(len(chain)):
        X = stage_features(t, chain, stage)
        names = feature_names(t, chain, stage)
        assert X.shape == (t.n, len(names))
        assert len(set(names)) == len(names)
        s = stage + 1
        # prompt + 7 per stage run (+ pairwise agreement + 3 majority features)
        expected = 1 + len(PER_STAGE) * s
        if with_answers:
            expected += math.comb(s, 2) + (3 if s > 1 else 0)
        assert len(names) == expected


def test_answer_codes(table: QueryTable) -> None:
    codes = table.answers
    assert codes is not None
    assert codes.shape == (7, 3)
    assert codes[4, 0] == -1 and codes[5, 2] == -1 and np.all(codes[6] == -1)
    assert codes[0, 0] == codes[0, 1] == codes[0, 2] >= 0
    assert codes[2, 0] != codes[2, 1] != codes[2, 2] != codes[2, 0]


def test_pairwise_agreement(table: QueryTable) -> None:
    chain = [0, 1, 2]
    #               q1   q2   q3   q4   q5   q6   q7
    expect_ab = [1.0, 0.0, 0.0, 1.0, NAN, 1.0, NAN]
    expect_ac = [1.0, 1.0, 0.0, 0.0, NAN, NAN, NAN]
    expect_bc = [1.0, 0.0, 0.0, 0.0, 0.0, NAN, NAN]
    np.testing.assert_array_equal(column(table, chain, 2, "agree:a~b"), expect_ab)
    np.testing.assert_array_equal(column(table, chain, 2, "agree:a~c"), expect_ac)
    np.testing.assert_array_equal(column(table, chain, 2, "agree:b~c"), expect_bc)
    # after stage 1 only a~b exists
    np.testing.assert_array_equal(column(table, chain, 1, "agree:a~b"), expect_ab)
    assert "agree:a~c" not in feature_names(table, chain, 1)
    assert not any(n.startswith("agree") for n in feature_names(table, chain, 0))


def test_majority_features_three_stages(table: QueryTable) -> None:
    chain = [0, 1, 2]
    # q1 x,x,x: 3/3, last in majority, 1 distinct
    # q2 x,y,x: 2/3, c = x in majority, 2
    # q3 x,y,z: 1/3, every answer ties at 1 so c is in the majority, 3
    # q4 x,x,y: 2/3, c = y not in majority, 2
    # q5 -,x,y: 1/3 (share over all 3 stages), c ties at 1 -> in majority, 2
    # q6 x,x,-: 2/3, c missing -> NaN, 1
    # q7 -,-,-: NaN, NaN, NaN
    np.testing.assert_allclose(
        column(table, chain, 2, "majority_share"), [1, 2 / 3, 1 / 3, 2 / 3, 1 / 3, 2 / 3, NAN]
    )
    np.testing.assert_array_equal(
        column(table, chain, 2, "last_in_majority"), [1, 1, 1, 0, 1, NAN, NAN]
    )
    np.testing.assert_array_equal(
        column(table, chain, 2, "distinct_answers"), [1, 2, 3, 2, 2, 1, NAN]
    )


def test_majority_features_two_stages(table: QueryTable) -> None:
    chain = [0, 1]
    # a,b: q1 x,x  q2 x,y  q3 x,y  q4 x,x  q5 -,x  q6 x,x  q7 -,-
    np.testing.assert_allclose(
        column(table, chain, 1, "majority_share"), [1, 0.5, 0.5, 1, 0.5, 1, NAN]
    )
    np.testing.assert_array_equal(
        column(table, chain, 1, "last_in_majority"), [1, 1, 1, 1, 1, 1, NAN]
    )
    np.testing.assert_array_equal(
        column(table, chain, 1, "distinct_answers"), [1, 2, 2, 1, 1, 1, NAN]
    )
    assert "majority_share" not in feature_names(table, chain, 0)


def test_per_stage_signal_columns(table: QueryTable) -> None:
    chain = [0, 2]
    X = stage_features(table, chain, 1)
    names = feature_names(table, chain, 1)
    assert names[:1] == ["log_prompt_chars"]
    d = len(PER_STAGE)
    assert names[1 : 1 + d] == [f"a:{s}" for s in PER_STAGE]
    assert names[1 + d : 1 + 2 * d] == [f"c:{s}" for s in PER_STAGE]
    assert np.all(np.isnan(X[:, 0]))  # no prompt in the log
    np.testing.assert_allclose(X[:, names.index("a:confidence")], 0.5)
    np.testing.assert_allclose(X[:, names.index("a:log_confidence")], math.log(0.5))
    np.testing.assert_allclose(X[:, names.index("a:log_doubt")], math.log(0.5))
    # c's confidence is 1: log(1 − 1) is clipped at log(1e-6)
    np.testing.assert_allclose(X[:, names.index("c:log_doubt")], math.log(1e-6))
    np.testing.assert_allclose(X[:, names.index("c:log_confidence")], 0.0)
    for missing in ("logprob_mean", "logprob_min", "tokens_out", "sample_share", "margin",
                    "entropy"):
        assert np.all(np.isnan(X[:, names.index(f"c:{missing}")]))
    prompted = QueryTable.from_runlog(runlog(with_prompt=True))
    np.testing.assert_allclose(stage_features(prompted, chain, 0)[:, 0], math.log1p(9))


# --- QualityPredictor ----------------------------------------------------------------------------


def separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] - 0.5 * X[:, 1] > 0).astype(float)
    X[rng.random(n) < 0.15, 2] = np.nan  # some missing signal
    X[:, 3] = np.nan  # a signal this log never has
    return X, y


@pytest.mark.parametrize("kind", KINDS)
def test_predictor_kinds_separable(kind: str) -> None:
    X, y = separable(160, 0)
    X_test, y_test = separable(300, 1)
    with threadpool_limits(1):  # gbt's OpenMP threads oversubscribe small CI machines
        model = QualityPredictor(kind, n_folds=3).fit(X, y)
        p = model.predict(X_test)
    assert p.shape == (300,)
    assert np.all((p >= 0) & (p <= 1))
    assert roc_auc_score(y_test, p) > 0.9
    assert model.oof_.shape == (160,)
    assert np.all((model.oof_ >= 0) & (model.oof_ <= 1))
    assert model.n_features_in_ == 4


def test_predictor_unknown_kind() -> None:
    X, y = separable(40, 0)
    with pytest.raises(ValueError, match="unknown predictor kind"):
        QualityPredictor("forest").fit(X, y)


def test_predictor_fractional_quality() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2))
    # quality .3 / .6 / .9 rising with X[:, 0]
    y = np.select([X[:, 0] < -0.5, X[:, 0] < 0.5], [0.3, 0.6], 0.9)
    model = QualityPredictor().fit(X, y)
    p = model.predict(X)
    assert np.all((p >= 0) & (p <= 1))
    assert model.oof_.shape == (200,)
    # ordering follows the quality, and the mean is about right
    assert p[X[:, 0] > 1].mean() > p[X[:, 0] < -1].mean() + 0.3
    assert p.mean() == pytest.approx(y.mean(), abs=0.05)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_predictor_single_class_is_constant(value: float) -> None:
    X, _ = separable(50, 3)
    model = QualityPredictor().fit(X, np.full(50, value))
    assert model.model_ == value
    np.testing.assert_array_equal(model.predict(separable(20, 4)[0]), np.full(20, value))
    np.testing.assert_array_equal(model.oof_, np.full(50, value))


def test_predictor_fast_path_matches_sklearn() -> None:
    X, y = separable(200, 5)
    model = QualityPredictor("logistic").fit(X, y)
    assert model._compiled is not None  # the numpy path is the one being checked
    X_test, _ = separable(100, 6)
    X_test[:10, 0] = np.nan  # missing where training had none
    slow = model.calibrator_.predict(_scores(model.model_, X_test))
    np.testing.assert_allclose(model.predict(X_test), slow, rtol=0, atol=1e-12)
    raw = _scores(model.model_, X_test)
    compiled = 1 / (1 + np.exp(-model._compiled.decision(X_test)))
    np.testing.assert_allclose(compiled, raw, rtol=0, atol=1e-12)


def test_predictor_without_calibration_and_few_positives() -> None:
    X, y = separable(60, 7)
    model = QualityPredictor(calibrate=False).fit(X, y)
    assert model.calibrator_ is None
    np.testing.assert_allclose(model.predict(X), _scores(model.model_, X), atol=1e-12)
    # one positive: no stratified folds possible, the OOF falls back to the mean
    y1 = np.zeros(60)
    y1[0] = 1.0
    model = QualityPredictor().fit(X, y1)
    np.testing.assert_allclose(model.oof_, np.full(60, 1 / 60))
    assert model.calibrator_ is None


def test_refit_predicts_with_the_new_model() -> None:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(120, 3))
    first, second = (X[:, 0] > 0).astype(float), (X[:, 0] < 0).astype(float)
    predictor = QualityPredictor().fit(X, first)
    before = predictor.predict(X)  # builds the numpy fast path of the first model
    after = predictor.fit(X, second).predict(X)
    np.testing.assert_allclose(after, QualityPredictor().fit(X, second).predict(X))
    assert roc_auc_score(second, after) > 0.9 > roc_auc_score(second, before)


def test_single_query_agreement_memo_equals_the_vectorised_features() -> None:
    """A live decision (one query) takes the memoised path; it must give the same features."""
    from ladder.signals import _agreement_features, _agreement_row

    rng = np.random.default_rng(3)
    for s in range(2, 6):
        codes = rng.integers(-1, 3, size=(200, s))
        batch = _agreement_features(codes)
        for row, expected in zip(codes, batch, strict=True):
            np.testing.assert_array_equal(_agreement_row(tuple(row.tolist())), expected)
