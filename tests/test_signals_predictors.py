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
    raw_test = _scores(model.model_, X_test)
    slow = model.calibrator_.predict_proba(np.log(raw_test / (1 - raw_test))[:, None])[:, 1]
    np.testing.assert_allclose(model.predict(X_test), slow, rtol=0, atol=1e-9)
    raw = _scores(model.model_, X_test)
    compiled = 1 / (1 + np.exp(-model._compiled.decision(X_test)))
    np.testing.assert_allclose(compiled, raw, rtol=0, atol=1e-12)


def test_predictor_without_calibration_and_few_positives() -> None:
    X, y = separable(60, 7)
    model = QualityPredictor(calibration=None).fit(X, y)
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


def test_calibration_is_cross_fitted() -> None:
    # a calibrator fitted on every out-of-fold score and applied to the same rows makes them
    # in-sample again; the cross-fitted `oof_` of each fold uses a map fitted on the others
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    from ladder.predictors import _apply_calibrator, _fit_calibrator, _fit_pipeline

    X, y = separable(150, 8)
    for method in ("sigmoid", "isotonic"):
        model = QualityPredictor(calibration=method, n_folds=3).fit(X, y)
        template = model._pipeline(X.shape[1])
        folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y.astype(int)))
        raw = np.empty(len(y))
        for train, held in folds:
            raw[held] = _scores(_fit_pipeline(clone(template), X[train], y[train]), X[held])
        expected = np.empty(len(y))
        for train, held in folds:
            expected[held] = _apply_calibrator(_fit_calibrator(method, raw[train], y[train]),
                                               raw[held])
        np.testing.assert_allclose(model.oof_, expected, atol=1e-12)
        in_sample = _apply_calibrator(model.calibrator_, raw)
        assert not np.allclose(model.oof_, in_sample)
    # sigmoid keeps the out-of-fold ranking of ~150 rows (isotonic collapses it to steps)
    sigmoid = QualityPredictor(calibration="sigmoid").fit(X, y)
    isotonic = QualityPredictor(calibration="isotonic").fit(X, y)
    assert len(np.unique(sigmoid.oof_)) > 3 * len(np.unique(isotonic.oof_))


def test_unlabelled_rows_are_predicted_not_fitted() -> None:
    X, y = separable(200, 9)
    partial = y.copy()
    partial[150:] = np.nan
    model = QualityPredictor().fit(X, partial)
    alone = QualityPredictor().fit(X[:150], y[:150])
    np.testing.assert_allclose(model.oof_[:150], alone.oof_, atol=1e-12)
    np.testing.assert_allclose(model.oof_[150:], alone.predict(X[150:]), atol=1e-12)
    with pytest.raises(ValueError, match="no labelled rows"):
        QualityPredictor().fit(X, np.full(200, np.nan))


def test_pooling_shrinks_task_terms_towards_the_shared_effect() -> None:
    # two tasks share the signal's slope; task 'small' (30 rows) has a true offset of +0.4
    # in log-odds over task 'large' (600 rows), much less than its sampling noise. Strong
    # pooling pulls 'small' towards the shared model; no pooling fits it on its own.
    rng = np.random.default_rng(10)
    n_large, n_small = 600, 30
    groups = np.array(["large"] * n_large + ["small"] * n_small)
    X = rng.normal(size=(n_large + n_small, 1))
    logit = 1.5 * X[:, 0] + np.where(groups == "small", 0.4, 0.0)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(float)
    probe = np.zeros((1, 1))
    shared = QualityPredictor(calibration=None).fit(X, y).predict(probe)[0]
    estimates = {}
    for strength in (0.01, 1.0, 30.0):
        model = QualityPredictor(calibration=None, pool_strength=strength).fit(X, y, groups)
        assert model.tasks_ == ("large", "small")
        estimates[strength] = model.predict(probe, np.array(["small"]))[0]
        # an unknown task gets the shared effects only
        unknown = model.predict(probe, np.array(["new"]))[0]
        assert abs(unknown - shared) < abs(estimates[strength] - shared) + 0.05
    assert abs(estimates[0.01] - shared) < 0.01  # fully pooled
    assert abs(estimates[0.01] - shared) < abs(estimates[1.0] - shared) < abs(
        estimates[30.0] - shared)
    assert abs(estimates[30.0] - shared) > 0.02
