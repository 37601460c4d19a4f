"""Policy files: round trips replay identically, and unsafe or foreign files are refused."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from ladder.policies.base import Outcome
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.persist import VERSION, PolicyFileError, load_policy, save_policy
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.stages import PredictorCache
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog import QueryTable
from ladder.runlog.table import SIGNAL_COLUMNS


def make_log(n: int, seed: int) -> QueryTable:
    """Three models (costs 1, 3, 9) whose confidence carries information about correctness."""
    rng = np.random.default_rng(seed)
    skill = np.array([0.55, 0.7, 0.9])
    quality = (rng.random((n, 3)) < skill).astype(float)
    confidence = np.clip(0.3 + 0.4 * quality + rng.normal(0, 0.15, (n, 3)), 0.01, 0.99)
    signals = {name: np.full((n, 3), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = confidence
    signals["tokens_out"] = rng.integers(5, 50, (n, 3)).astype(float)
    answers = np.where(quality == 1, 0, rng.integers(1, 4, (n, 3)))
    answers[rng.random((n, 3)) < 0.05] = -1
    return QueryTable(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        models=("small", "mid", "large"),
        quality=quality,
        cost=np.tile([1.0, 3.0, 9.0], (n, 1)),
        signals=signals,
        answers=answers,
    )


@pytest.fixture(scope="module")
def logs() -> tuple[QueryTable, QueryTable, PredictorCache]:
    train = make_log(150, 0)
    return train, make_log(80, 1), PredictorCache(train)


def assert_same_outcome(a: Outcome, b: Outcome) -> None:
    np.testing.assert_array_equal(a.chosen, b.chosen)
    np.testing.assert_array_equal(a.last_run, b.last_run)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.cost, b.cost)


def strict_json(text: str) -> object:
    """json.loads that refuses the non-standard Infinity / -Infinity / NaN tokens."""

    def refuse(token: str) -> None:
        raise AssertionError(f"policy file holds the non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


POLICIES = {
    "threshold": lambda: ThresholdCascade(["small", "mid", "large"], lam=0.02),
    "threshold-pair": lambda: ThresholdCascade(["small", "large"], lam=0.01),
    "dp-value": lambda: DPCascade(None, lam=0.02),
    "dp-realized": lambda: DPCascade(["small", "large"], lam=0.01, target="realized",
                                     best_so_far=False),
    "seed-001": lambda: SeedHeuristic(["small", "mid", "large"], lam=1.0),
    "seed-000": lambda: SeedHeuristic(None, lam=0.1, formula="000"),
    "fixed": lambda: FixedModel("mid"),
    "oracle": lambda: Oracle(lam=0.05),
    "random": lambda: RandomMix(target_cost=4.0, random_state=3),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_round_trip_replays_identically(logs, tmp_path: Path, name: str) -> None:
    train, test, cache = logs
    policy = POLICIES[name]().fit(train, cache)
    path = save_policy(policy, tmp_path / "sub" / f"{name}.json")
    assert path.exists()
    strict_json(path.read_text())
    loaded = load_policy(path)
    assert type(loaded) is type(policy)
    assert loaded.get_params() == policy.get_params()
    for table in (test, train):
        assert_same_outcome(loaded.replay(table), policy.replay(table))
    for attr in ("chain_", "models_"):
        if hasattr(policy, attr):
            assert getattr(loaded, attr) == getattr(policy, attr)
            assert isinstance(getattr(loaded, attr), tuple)
    if hasattr(policy, "thresholds_"):
        np.testing.assert_array_equal(loaded.thresholds_, policy.thresholds_)
        assert loaded.thresholds_[-1] == -np.inf


@pytest.mark.parametrize("kind", ["threshold", "dp"])
def test_best_chain_saved_as_its_policy(logs, tmp_path: Path, kind: str) -> None:
    train, test, cache = logs
    best = BestChain(kind=kind, lam=0.02, max_stages=2, dp_candidates=2).fit(train, cache)
    loaded = load_policy(save_policy(best, tmp_path / "best.json"))
    assert type(loaded) is type(best.policy_)
    assert loaded.chain_ == best.chain_
    assert_same_outcome(loaded.replay(test), best.replay(test))


def test_infinite_thresholds_are_valid_json(logs, tmp_path: Path) -> None:
    train, _, cache = logs
    # λ huge: stop at the first stage always (finite θ0), last stage −inf
    policy = ThresholdCascade(["small", "large"], lam=1e6).fit(train, cache)
    # λ 0 with a never-stopping first stage: θ0 = +inf
    never = ThresholdCascade(["small", "large"], lam=0.0).fit(train, cache)
    never.thresholds_ = np.array([np.inf, -np.inf])
    for p, name in ((policy, "a.json"), (never, "b.json")):
        text = save_policy(p, tmp_path / name).read_text()
        assert "Infinity" not in text and "NaN" not in text
        document = strict_json(text)
        assert document["format"] == "ladder-policy" and document["version"] == VERSION
        np.testing.assert_array_equal(load_policy(tmp_path / name).thresholds_, p.thresholds_)


def test_unfitted_policy_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        save_policy(ThresholdCascade(), tmp_path / "x.json")


@pytest.fixture(scope="module")
def saved_document(logs, tmp_path_factory) -> dict:
    train, _, cache = logs
    path = tmp_path_factory.mktemp("policy") / "threshold.json"
    save_policy(ThresholdCascade(["small", "mid"], lam=0.02).fit(train, cache), path)
    return json.loads(path.read_text())


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format", "something-else", "not a ladder policy file"),
        ("version", 1, "version 1"),  # before cross-fitted calibration, margin, entropy
        ("version", 2, "version 2"),  # before moa, router and routed
        ("version", 4, "version 4"),
        ("family", "pyramid", "unknown policy family"),
        ("family", None, "unknown policy family"),
    ],
)
def test_wrong_header_is_refused(saved_document, tmp_path: Path, field, value, message) -> None:
    document = dict(saved_document)
    document[field] = value
    with pytest.raises(PolicyFileError, match=message):
        load_policy(write(tmp_path, document))


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PolicyFileError):
        load_policy(bad)
    with pytest.raises(PolicyFileError):
        load_policy(tmp_path / "missing.json")
    with pytest.raises(PolicyFileError):
        load_policy(write(tmp_path, [1, 2, 3]))


class Untrusted:
    """A class from outside scikit-learn, numpy and ladder."""

    def __init__(self) -> None:
        self.payload = "hello"


def splice(document: dict, blob: bytes) -> dict:
    """The document with the first stage predictor replaced by an embedded skops blob."""
    edited = json.loads(json.dumps(document))
    assert "skops" in edited["fitted"]["predictors_"][0]
    edited["fitted"]["predictors_"][0] = {"skops": base64.b64encode(blob).decode("ascii")}
    return edited


def test_untrusted_type_is_refused(saved_document, tmp_path: Path) -> None:
    blob = sio.dumps(Untrusted())
    assert any(t.endswith("Untrusted") for t in sio.get_untrusted_types(data=blob))
    with pytest.raises(PolicyFileError, match="does not load"):
        load_policy(write(tmp_path, splice(saved_document, blob)))
    # the untouched document still loads
    assert isinstance(load_policy(write(tmp_path, saved_document)), ThresholdCascade)


def call_on_load(function: str, argument: str) -> bytes:
    """A skops blob whose loading calls builtins.<function>(argument) (a reduce node)."""
    args = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps((argument,)))).read("schema.json"))
    schema = {
        "__class__": function, "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode", "content": args, "__id__": 1,
        "protocol": args["protocol"], "_skops_version": args["_skops_version"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


def test_builtin_callables_are_refused(saved_document, tmp_path: Path, monkeypatch) -> None:
    flag = "LADDER_TEST_POLICY_PAYLOAD_RAN"
    monkeypatch.delenv(flag, raising=False)
    blob = call_on_load("exec", f"__import__('os').environ[{flag!r}] = '1'")
    assert sio.get_untrusted_types(data=blob) == ["builtins.exec"]
    error: Exception | None = None
    try:
        load_policy(write(tmp_path, splice(saved_document, blob)))
    except Exception as caught:
        error = caught
    ran = os.environ.pop(flag, None) == "1"
    assert not ran, "the embedded payload ran during load_policy"
    assert isinstance(error, PolicyFileError)


def test_string_values_that_look_like_floats_survive(tmp_path: Path) -> None:
    table = make_log(20, 2)
    table = QueryTable(
        query_ids=table.query_ids, models=("inf", "mid", "nan"), quality=table.quality,
        cost=table.cost, signals=table.signals,
    )
    policy = FixedModel("nan").fit(table)
    loaded = load_policy(save_policy(policy, tmp_path / "nan.json"))
    assert loaded.model == "nan"
    assert loaded.model_ == "nan"
    assert_same_outcome(loaded.replay(table), policy.replay(table))
