"""Pre-generation routers: the decision rule, replay vs live decisions, save/load, the
quality models, and the prompts reaching the engine from the real logs."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pandas as pd
import pytest

from ladder.evaluate.experiment import evaluate
from ladder.policies.persist import load_policy, save_policy
from ladder.policies.router import CostModel, Router, RouterCache
from ladder.policies.router_models import IRTQuality, KNNQuality, LogisticQuality, brier
from ladder.prompt_features import FeatureError, TextFeatures, load_embedder
from ladder.runlog import QueryTable, load_runlog
from ladder.runlog.table import SIGNAL_COLUMNS

TOPICS = {  # topic -> P(correct) of (cheap, dear)
    "algebra integral derivative equation": (0.1, 0.95),
    "history king war century empire": (0.9, 0.9),
    "poem novel author verse chapter": (0.5, 0.6),
}


def make_log(n: int, seed: int, unlabelled: float = 0.0) -> QueryTable:
    """Prompts whose topic decides which model is right; cheap costs 1, dear 10."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    which = rng.integers(0, len(topics), n)
    prompts = []
    for t in which:
        words = topics[t].split()
        prompts.append(" ".join(rng.choice(words, 6)) + f" question {rng.integers(1000)}")
    skill = np.array([TOPICS[topics[t]] for t in which])
    quality = (rng.random((n, 2)) < skill).astype(float)
    quality[rng.random((n, 2)) < unlabelled] = np.nan
    return QueryTable(
        query_ids=np.array([f"q{seed}-{i}" for i in range(n)], dtype=object),
        models=("cheap", "dear"),
        quality=quality,
        cost=np.tile([1.0, 10.0], (n, 1)),
        signals={name: np.full((n, 2), np.nan) for name in SIGNAL_COLUMNS},
        prompt_len=np.array([float(len(p)) for p in prompts]),
        prompts=np.array(prompts, dtype=object),
    )


@pytest.fixture(scope="module")
def logs() -> tuple[QueryTable, QueryTable, RouterCache]:
    train = make_log(240, 0)
    return train, make_log(150, 1), RouterCache(train, ["logistic-text", "knn-text",
                                                        "irt-text"])


def test_decision_rule_hand_checked() -> None:
    router = Router(lam=1.0)
    router.mean_cost_ = np.array([0.1, 0.2, 0.3])
    quality = np.array([[0.3, 0.8, 0.9], [0.3, 0.8, 0.9], [0.9, 0.5, 0.95]])
    cost = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.1], [0.1, 0.2, 0.3]])
    # utilities: [0.2, 0.6, 0.6] (tie: the cheaper, 1), [0.2, 0.6, 0.8], [0.8, 0.3, 0.65]
    np.testing.assert_array_equal(router.pick(quality, cost), [1, 2, 0])
    router.lam = 0.0
    np.testing.assert_array_equal(router.pick(quality, cost), [2, 2, 2])
    budget = Router(budget=0.5)
    budget.pair_, budget.threshold_ = (0, 2), 0.1
    # win scores ĝ_strong − ĝ_weak: 0.6, 0.6, 0.05
    np.testing.assert_array_equal(budget.pick(quality, cost), [2, 2, 0])


def test_router_routes_by_topic(logs) -> None:
    train, test, cache = logs
    router = Router(lam=0.02).fit(train, cache)
    out = router.replay(test)
    algebra = np.array(["algebra" in p or "integral" in p or "equation" in p
                        or "derivative" in p for p in test.prompts])
    # dear is worth its cost on algebra (+0.85 > 0.02·9) and not on history (0 < 0.18)
    assert (out.chosen[algebra] == 1).mean() > 0.9
    history = np.array([any(w in p for w in ("history", "king", "war", "century", "empire"))
                        for p in test.prompts]) & ~algebra
    assert (out.chosen[history] == 0).mean() > 0.6
    cheap = test.mean_quality()[0]
    assert out.mean_quality > cheap and out.mean_cost < test.mean_cost()[1]
    assert router.variant_ in cache.variants
    assert {c["variant"] for c in router.candidates_} == set(cache.variants)


def test_replay_matches_live_decisions_and_predict_quality(logs) -> None:
    train, test, cache = logs
    router = Router(lam=0.02).fit(train, cache)
    out = router.replay(test)
    rows = np.arange(test.n)
    np.testing.assert_array_equal(out.chosen, router.choose(test))
    np.testing.assert_array_equal(out.quality, test.quality[rows, out.chosen])
    np.testing.assert_array_equal(out.cost, test.cost[rows, out.chosen])
    live = [test.index(router.decide(p)[0]) for p in test.prompts]
    np.testing.assert_array_equal(live, out.chosen)
    g = router.predict_quality(test)
    assert g.shape == (test.n, 2) and np.all((g >= 0) & (g <= 1))
    swapped = test.select_models(["dear", "cheap"])
    np.testing.assert_allclose(router.predict_quality(swapped), g[:, ::-1])
    np.testing.assert_array_equal(router.choose(swapped), 1 - out.chosen)
    np.testing.assert_allclose(router.decide(test.prompts[0])[1], g[0])


def test_text_features_fast_path_equals_transform() -> None:
    prompts = list(make_log(60, 3).prompts)
    features = TextFeatures().fit(prompts, ["a", "b"] * 30)
    full = features.transform(prompts[:10], ["a", "b", "c"] * 3 + ["a"]).toarray()
    one = np.vstack([features.transform_one(p, t).toarray()
                     for p, t in zip(prompts[:10], ["a", "b", "c"] * 3 + ["a"], strict=True)])
    np.testing.assert_allclose(one, full, atol=1e-12)
    assert full[:, -2:].sum() == 7  # one-hot tasks; the unknown task 'c' gets zeros


def test_budget_mode_hits_target_share(logs) -> None:
    train, test, cache = logs
    for share in (0.2, 0.5):
        router = Router(budget=share).fit(train, cache)
        strong = (router.replay(test).chosen == 1).mean()
        assert abs(strong - share) < 0.12, (share, strong)
    assert (Router(budget=0.0).fit(train, cache).replay(test).chosen == 0).all()
    assert (Router(budget=1.0).fit(train, cache).replay(test).chosen == 1).all()
    with pytest.raises(ValueError, match="budget"):
        Router(budget=1.5).fit(train, cache)


def test_quality_models_learn_and_skip_unlabelled() -> None:
    train, test = make_log(300, 4, unlabelled=0.2), make_log(200, 5)
    features = TextFeatures().fit(train.prompts)
    X, Xt = features.transform(train.prompts), features.transform(test.prompts)
    prior = np.nanmean(train.quality, axis=0)
    baseline = brier(np.tile(prior, (test.n, 1)), test.quality)
    for model in (LogisticQuality(C=1.0), KNNQuality(15), IRTQuality(rank=1, alpha=1e-2)):
        predicted = model.fit(X, train.quality).predict(Xt)
        assert np.isfinite(predicted).all()
        assert brier(predicted, test.quality) < baseline - 0.02, type(model).__name__


def test_soft_labels_and_constant_models() -> None:
    X = np.array([[0.0], [1.0], [0.0], [1.0]])
    quality = np.array([[0.2, 1.0], [0.8, 1.0], [0.2, 1.0], [0.8, np.nan]])
    g = LogisticQuality(C=100.0).fit(X, quality).predict(X)
    np.testing.assert_allclose(g[:, 0], [0.2, 0.8, 0.2, 0.8], atol=0.02)
    np.testing.assert_allclose(g[:, 1], 1.0, atol=1e-3)  # always right on train


def test_cost_model() -> None:
    table = make_log(50, 6)
    lengths = table.prompt_len
    varying = QueryTable(table.query_ids, table.models, table.quality,
                         np.column_stack([0.5 + 0.01 * lengths, np.full(50, 2.0)]),
                         table.signals, prompt_len=lengths, prompts=table.prompts)
    model = CostModel().fit(varying)
    np.testing.assert_allclose(model.slope_, [0.01, 0.0], atol=1e-12)
    np.testing.assert_allclose(model.predict_lengths(np.array([100.0, np.nan]), 2),
                               [[1.5, 2.0], [0.5 + 0.01 * lengths.mean(), 2.0]])
    flat = CostModel().fit(table)
    np.testing.assert_array_equal(flat.slope_, [0.0, 0.0])
    np.testing.assert_array_equal(flat.intercept_, [1.0, 10.0])


def test_save_load_round_trip(logs, tmp_path) -> None:
    train, test, cache = logs
    for variant in cache.variants:
        router = Router(lam=0.02, variants=[variant]).fit(train, cache)
        loaded = load_policy(save_policy(router, tmp_path / f"{variant}.json"))
        assert isinstance(loaded, Router) and loaded.variant_ == variant
        np.testing.assert_array_equal(loaded.predict_quality(test), router.predict_quality(test))
        np.testing.assert_array_equal(loaded.replay(test).chosen, router.replay(test).chosen)
        assert loaded.decide(test.prompts[0])[0] == router.decide(test.prompts[0])[0]
    budget = Router(budget=0.3, variants=["logistic-text"]).fit(train, cache)
    loaded = load_policy(save_policy(budget, tmp_path / "budget.json"))
    np.testing.assert_array_equal(loaded.replay(test).chosen, budget.replay(test).chosen)


def test_router_family_in_evaluate(logs) -> None:
    train, test, _ = logs
    result = evaluate(train, test, families=("fixed", "router"), n_lambdas=6,
                      n_resamples=200, n_jobs=1)
    summary = result.summary["router"]
    assert len(result.family_points("router")) == 7
    assert summary["aiq"] is not None and "ci" in summary
    assert summary["max_quality"] >= test.mean_quality().max() - 0.05
    no_prompts = make_log(40, 7)
    bare = QueryTable(no_prompts.query_ids, no_prompts.models, no_prompts.quality,
                      no_prompts.cost, no_prompts.signals)
    left_out = evaluate(bare, bare, families=("fixed", "router"), n_lambdas=3,
                        n_resamples=0, n_jobs=1)
    assert "router" not in left_out.summary and "prompt" in left_out.notes[0]


def test_missing_prompts_and_variants_are_clear_errors(logs) -> None:
    train, _, _ = logs
    bare = QueryTable(train.query_ids, train.models, train.quality, train.cost, train.signals)
    with pytest.raises(FeatureError, match="prompt"):
        Router().fit(bare)
    with pytest.raises(FeatureError, match="unknown router variant"):
        Router(variants=["forest-text"]).fit(train)


def test_missing_extra_is_a_clear_error(monkeypatch) -> None:
    load_embedder.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)  # import fails as if not installed
    with pytest.raises(FeatureError, match=r"ladder\[router\]"):
        load_embedder()
    load_embedder.cache_clear()


def test_embedding_model_loads_offline(monkeypatch) -> None:
    pytest.importorskip("wordllama", reason="the optional 'router' extra is not installed")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    load_embedder.cache_clear()
    model = load_embedder()
    vectors = np.asarray(model.embed(["What is 2 + 2?", "Name a French king."], norm=True))
    assert vectors.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    load_embedder.cache_clear()


def test_zellinger_prompts_reach_the_table(shared_data) -> None:
    df = load_runlog(shared_data / "zellinger-cascades", "auto")
    table = QueryTable.from_runlog(df, benchmark="mmlu")
    assert table.n == 285 + 1531 and table.prompts is not None
    assert all(isinstance(p, str) and p for p in table.prompts)
    np.testing.assert_array_equal(table.prompt_len, [len(p) for p in table.prompts])
    by_id = dict(zip(table.query_ids, table.prompts, strict=True))
    assert "Every function from a finite set onto itself" in by_id["mmlu/train/3"]
    train = table.rows(table.split == "train").select_models(["gpt-4o", "llama3.2-1b"])
    assert train.n == 285 and train.prompts[3] == by_id[train.query_ids[3]]
    trivia = QueryTable.from_runlog(df, benchmark="triviaqa")
    assert "Teletubbies" in dict(zip(trivia.query_ids, trivia.prompts,
                                     strict=True))["triviaqa/train/3"]


def test_routellm_prompts_reach_the_table(shared_data) -> None:
    df = load_runlog(shared_data / "routellm-gpt4-mixtral", "auto")
    gsm8k = QueryTable.from_runlog(df, benchmark="gsm8k")
    mmlu = QueryTable.from_runlog(df, benchmark="mmlu")
    assert (gsm8k.n, mmlu.n) == (1307, 14037)  # decontaminated, as SOURCE.md
    assert all(isinstance(p, str) and p for p in np.r_[gsm8k.prompts, mmlu.prompts])
    assert any(p.startswith("Janet") for p in gsm8k.prompts)  # GSM8K test's first question
    assert pd.Series(mmlu.prompts).nunique() > 0.99 * mmlu.n
    np.testing.assert_allclose(gsm8k.mean_quality(), [0.6373, 0.8577], atol=5e-5)


@pytest.mark.parametrize("dense_cells", [0, 10**9])  # the sparse and the dense fast path
def test_knn_single_sparse_row_equals_the_batch_path(monkeypatch, dense_cells: int) -> None:
    """A live decision's fast path (one sparse row) gives the batch path's ĝ."""
    import scipy.sparse as sp

    from ladder.policies import router_models

    monkeypatch.setattr(router_models, "DENSE_CELLS", dense_cells)
    rng = np.random.default_rng(0)
    X = sp.random(80, 50, density=0.1, random_state=1, format="csr")
    quality = (rng.random((80, 3)) < 0.6).astype(float)
    quality[rng.random((80, 3)) < 0.2] = np.nan
    model = KNNQuality(n_neighbors=7).fit(X, quality)
    queries = sp.random(12, 50, density=0.15, random_state=2, format="csr")
    batch = model.predict(queries)
    rows = np.vstack([model.predict(queries[i]) for i in range(12)])
    np.testing.assert_allclose(rows, batch, atol=1e-12)
