"""The router, profile and monotonicity experiments: their units on a data folder, the
verdicts their sections give, and one real unit each (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladder.experiments.base import FAILS, HOLDS, REGISTRY, experiment
from ladder.experiments.data import DataDir
from ladder.experiments.moa import Monotonicity, Profile
from ladder.experiments.router import RouterComparison


class Logs(DataDir):
    """A data folder holding the given layouts with these benchmarks, without files."""

    def __init__(self, benchmarks: dict[str, list[str]]):
        self.root, self.cache = Path("."), None
        self.found = {kind: Path(kind) for kind in benchmarks}
        self._benchmarks = benchmarks

    def benchmarks(self, kind: str) -> list[str]:
        return self._benchmarks.get(kind, [])


ALL = Logs({"mot": ["date"], "zellinger": ["mmlu", "medmcqa", "triviaqa", "gsm8k"],
            "routellm": ["mmlu", "gsm8k", "mt_bench"]})


def test_registry_names_the_classes() -> None:
    assert isinstance(experiment("router"), RouterComparison)
    assert isinstance(experiment("profile"), Profile)
    assert isinstance(experiment("monotonicity"), Monotonicity)
    assert {REGISTRY[n] for n in ("profile", "monotonicity")} == {
        "ladder.experiments.moa:Profile", "ladder.experiments.moa:Monotonicity"}


def test_units_follow_the_logs_present() -> None:
    moa = ["mot", "zellinger/mmlu", "zellinger/medmcqa", "zellinger/triviaqa"]
    assert Profile().units(ALL) == Monotonicity().units(ALL) == moa
    assert RouterComparison().units(ALL) == ["mmlu", "gsm8k"]  # RouteLLM publishes these
    nothing = Logs({"routerdc": ["mmlu"]})
    for exp in (Profile(), Monotonicity(), RouterComparison()):
        assert exp.units(nothing) == []
    assert Profile().units(Logs({"mot": ["date"]})) == ["mot"]
    assert Monotonicity().units(Logs({"zellinger": ["triviaqa"]})) == ["zellinger/triviaqa"]
    assert RouterComparison().units(Logs({"routellm": ["gsm8k"]})) == ["gsm8k"]


def _setup(log: str, delta: tuple[float, float, float], minus: tuple[float, float, float],
           savings: tuple[float, float, float]) -> dict:
    """A measured setup as `moa_setups.measure` returns it: ΔAcc, accuracy − oracle's and
    the saving, each (point, low, high)."""
    oracle = 0.85
    return {
        "log": log, "slug": log, "layer1": ["a", "b"], "oracle": "big", "n_test": 100,
        "imperfection_barrier": 0.15, "oracle_cost": 1.0,
        "references": {"oracle_accuracy": oracle, "layer1_accuracy": 0.7},
        "profile": [{"t": 0.4, "accuracy": oracle + minus[0], "savings": savings[0]}],
        "at_t": {"p_R": 0.3, "alpha_L1_R": 0.4, "alpha_L2_R": 0.4 + delta[0] / 0.3,
                 "gap": delta[0] / 0.3, "delta_acc": delta[0], "delta_acc_ci": list(delta[1:]),
                 "satisfied": delta[0] >= 0, "accuracy": oracle + minus[0],
                 "accuracy_ci": [oracle + minus[1], oracle + minus[2]],
                 "minus_oracle": minus[0], "minus_oracle_ci": list(minus[1:]),
                 "savings": savings[0], "savings_ci": list(savings[1:])},
    }


FRONTIER = {"n_train": 10, "n_test": 100, "notes": ["moa skipped: no votes"],
            "moa_minus_auto_aiq": None, "layers": [],
            "families": {"auto": {"aiq": 0.8, "aiq_ci": [0.7, 0.9], "cost_at_98": None,
                                  "cost_at_98_ci": [None, None], "reached_98": 0.0,
                                  "max_quality": 0.82}}}


def _results(*setups: dict) -> dict[str, dict]:
    return {s["log"]: {"split": "test", "setups": [s], "frontier": FRONTIER} for s in setups}


def _finding(exp: Profile | Monotonicity, results: dict, tmp_path: Path):
    section = exp.render(results, tmp_path / exp.name, tmp_path / "results.md")
    (finding,) = section.findings
    return section, finding


def test_monotone_holds_only_when_every_interval_is_above_zero(tmp_path: Path) -> None:
    good = _setup("x", (0.05, 0.02, 0.08), (-0.01, -0.03, 0.01), (0.3, 0.2, 0.4))
    also = _setup("y", (0.10, 0.06, 0.14), (-0.01, -0.03, 0.01), (0.3, 0.2, 0.4))
    section, finding = _finding(Monotonicity(), _results(good, also), tmp_path)
    assert finding.claim == "monotone" and finding.verdict == HOLDS
    assert "2 of 2" in finding.measured and "+0.050 [+0.020, +0.080]" in finding.measured
    assert "MBPP (Code)" in section.markdown  # the seed's Table 3 beside ours
    worse = _setup("z", (-0.04, -0.07, -0.01), (-0.05, -0.07, -0.02), (0.3, 0.2, 0.4))
    section, finding = _finding(Monotonicity(), _results(good, worse), tmp_path)
    assert finding.verdict == FAILS and "1 of 2" in finding.measured and "✗" in section.markdown
    unsure = _setup("w", (0.01, -0.01, 0.03), (-0.01, -0.03, 0.01), (0.3, 0.2, 0.4))
    _, finding = _finding(Monotonicity(), _results(good, unsure), tmp_path)
    assert finding.verdict not in (HOLDS, FAILS) and "reaches 0" in finding.verdict


def test_moa_savings_verdict_reads_the_paired_interval(tmp_path: Path) -> None:
    level = _setup("x", (0.05, 0.02, 0.08), (-0.01, -0.03, 0.01), (0.18, 0.1, 0.25))
    section, finding = _finding(Profile(), _results(level), tmp_path)
    assert finding.claim == "moa-savings" and finding.verdict == HOLDS
    assert "18.0%" in finding.measured
    assert "(profile/profile_x.png)" in section.markdown
    assert "skipped: moa skipped: no votes" in section.markdown  # moa's absence is said
    below = _setup("y", (0.05, 0.02, 0.08), (-0.05, -0.08, -0.02), (0.4, 0.3, 0.5))
    _, finding = _finding(Profile(), _results(below), tmp_path)
    assert finding.verdict == FAILS and "below the oracle on 1 of 1" in finding.measured
    _, finding = _finding(Profile(), _results(level, below), tmp_path)
    assert finding.verdict == "holds on 1 of 2 setups"


def _metric(point: float, low: float, high: float) -> dict:
    return {"point": point, "low": low, "high": high, "reached": 1.0}


def _routellm(benchmark: str, saving: tuple[float, float, float]) -> dict:
    line = {m: _metric(v, v, v) for m, v in
            (("cpt50", 0.5), ("cpt80", 0.8), ("apgr", 0.5), ("saving_95", 0.2))}
    return {"benchmark": benchmark, "split": "random 50% / 50%, seed 0", "n_train": 10,
            "n_test": 10, "weak_quality": 0.6, "strong_quality": 0.8,
            "router": {**line, "saving_95": _metric(*saving)}, "random": line,
            "variants": ["logistic-text"], "fit_seconds": 1.0,
            "published_saving_95": {"mmlu": 0.45, "gsm8k": 0.35}[benchmark]}


def test_router_section_says_whether_ours_beats_the_published_figure(tmp_path: Path) -> None:
    results = {"mmlu": _routellm("mmlu", (0.55, 0.51, 0.59)),
               "gsm8k": _routellm("gsm8k", (0.36, 0.30, 0.42))}
    section = RouterComparison().render(results, tmp_path, tmp_path / "results.md")
    assert section.findings == []  # no seed claim is attached to it
    text = section.markdown
    assert "on 1 of 2 benchmarks" in text
    assert "mmlu: ours 55.0% [51.0%, 59.0%] vs RouteLLM's ~45%: above it" in text
    assert "gsm8k: ours 36.0% [30.0%, 42.0%] vs RouteLLM's ~35%: the interval includes it" \
        in text
    assert "| gsm8k | random | 0.500 | 0.800 | 0.500 | 0.200 |  |" in text


@pytest.mark.slow
def test_router_gsm8k_on_the_real_log(shared_data: Path, tmp_path: Path) -> None:
    result = RouterComparison().run("gsm8k", DataDir(shared_data), tmp_path)
    assert (result["n_train"], result["n_test"]) == (654, 653)
    saving = result["router"]["saving_95"]
    assert saving["low"] < saving["point"] < saving["high"]
    assert saving["point"] > result["random"]["saving_95"]["point"]  # better than the line


@pytest.mark.slow
def test_monotonicity_mot_on_the_real_log(shared_data: Path, tmp_path: Path) -> None:
    result = Monotonicity().run("mot", DataDir(shared_data), tmp_path)
    (row,) = result["setups"]
    assert row["layer1"] == ["llama-2-13b", "gpt-3.5-turbo"] and row["oracle"] == "gpt-4"
    at = row["at_t"]
    assert at["satisfied"] and at["delta_acc_ci"][0] > 0  # mot's ΔAcc is shown positive
    assert "profile" not in row  # monotonicity keeps only the row at t = 0.4
    section = Monotonicity().render({"mot": result}, tmp_path, tmp_path / "results.md")
    assert section.findings[0].verdict == HOLDS


@pytest.mark.slow
def test_profile_mot_on_the_real_log(shared_data: Path, tmp_path: Path) -> None:
    result = Profile().run("mot", DataDir(shared_data), tmp_path)
    (row,) = result["setups"]
    assert len(row["profile"]) == 19 and (tmp_path / "profile_mot.png").stat().st_size > 0
    assert set(result["frontier"]["families"]) == {"auto", "moa"}
    section = Profile().render({"mot": result}, tmp_path, tmp_path / "results.md")
    assert section.findings[0].claim == "moa-savings"
