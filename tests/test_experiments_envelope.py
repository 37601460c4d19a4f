"""The `envelope` experiment: verdicts from intervals, the exact pruning of the bootstrap's
points, and one real benchmark through `run` and `render`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ladder.evaluate.envelope import envelope, pair_frontiers
from ladder.evaluate.intervals import frontier_intervals
from ladder.experiments.base import FAILS, HOLDS
from ladder.experiments.data import DataDir
from ladder.experiments.envelope import ROWS, Envelope
from ladder.experiments.envelope_runs import ENV, FULL, PAIR, _matrices
from ladder.policies.stages import PredictorCache
from test_report import synthetic_table


def span(point: float, low: float, high: float) -> dict:
    return {"point": point, "low": low, "high": high}


def result(sub_env: dict, router_dep: dict, q1: float, q3: float) -> dict:
    """A benchmark's results as `run` returns them, with the intervals the verdicts read
    (best subsequence − envelope, router − best deployable cascade) and one full-chain
    boundary whose ratio to λ has quartiles q1, q3."""
    row = {"aiq": span(0.8, 0.79, 0.81), "cost_at_98": span(0.5, 0.4, None),
           "cost_at_100": span(None, None, None), "max_quality": 0.9}
    shadow = [{"boundary": 1, "n_lambdas": 10, "median_ratio": (q1 + q3) / 2, "q1": q1,
               "q3": q3}]
    return {
        "split": "the log's split", "n_train": 100, "n_test": 200, "n_lambdas": 21,
        "notes": [], "models": ["a", "b", "c"], "n_pairs": 3, "pairs_ranked": ["a → c"],
        "rows": {n: row for n in ("fixed", "a → c", *ROWS, "dp refunded")},
        "envelope_vertices": 2, "envelope_owners": ["a → c"],
        "subsequence_chains": [["a → c", 21]], "best_cascade": ENV,
        "best_deployable_cascade": "dp", "best_cascade_family": "dp",
        "diffs": {f"threshold − {ENV}": sub_env, f"{ENV} − {FULL}": span(0.05, 0.04, 0.06),
                  f"threshold − {PAIR}": span(0.0, -0.01, 0.01), "router − dp": router_dep,
                  f"router − {ENV}": span(-0.02, -0.03, -0.01),
                  "dp refunded − router": span(0.01, 0.0, 0.02),
                  "routed − dp": span(0.0, -0.01, 0.01), "routed − router": span(0.0, -0.01, 0.01)},
        "shadow": {"full chain": shadow, "best subsequence": shadow},
        "signal": {"router_variant": "v", "cheapest": "a", "first_rungs": [["a", 21]],
                   "per_model": {"a": {"pre_auroc": 0.6, "post_auroc": 0.8}}},
        "routed": {"per_lambda": [], "n": 20, "won_train": 20, "won_test": 9, "routing": 3},
        "figure": "mmlu.png",
    }


def verdicts(results: dict[str, dict], tmp_path: Path) -> dict[str, tuple[str, str]]:
    section = Envelope().render(results, tmp_path / "out" / "envelope", tmp_path / "page.md")
    assert "](out/envelope/mmlu.png)" in section.markdown
    return {f.claim: (f.verdict, f.measured) for f in section.findings}


def test_claims_hold_when_every_interval_is_on_the_claims_side(tmp_path):
    found = verdicts({"mmlu": result(span(-0.03, -0.04, -0.02), span(0.01, 0.005, 0.02),
                                     0.8, 1.2)}, tmp_path)
    assert {k: v for k, (v, _) in found.items()} == {
        "envelope": HOLDS, "shadow-price": HOLDS, "router-beats": HOLDS}
    assert "mmlu -0.030 [-0.040, -0.020]" in found["envelope"][1]
    assert "not settled" not in found["router-beats"][1]


def test_claims_fail_when_an_interval_lies_against_them(tmp_path):
    found = verdicts({"mmlu": result(span(0.02, 0.01, 0.03), span(-0.01, -0.02, -0.005),
                                     2.0, 5.0)}, tmp_path)
    assert {k: v for k, (v, _) in found.items()} == {
        "envelope": FAILS, "shadow-price": FAILS, "router-beats": FAILS}
    assert "mmlu 1/1" in found["shadow-price"][1]


def test_a_straddling_interval_is_not_settled_and_judged_by_its_point(tmp_path):
    settled = result(span(-0.03, -0.04, -0.02), span(0.01, 0.005, 0.02), 0.8, 1.2)
    found = verdicts({"mmlu": settled, "gsm8k": result(
        span(-0.01, -0.02, 0.01), span(0.002, -0.001, 0.005), 0.8, 1.2)}, tmp_path)
    assert found["router-beats"][0] == HOLDS
    assert "not settled on gsm8k" in found["router-beats"][1]
    against = result(span(-0.03, -0.04, -0.02), span(-0.002, -0.005, 0.001), 0.8, 1.2)
    found = verdicts({"mmlu": settled, "gsm8k": against}, tmp_path)
    assert found["router-beats"][0] == FAILS


def test_no_zellinger_log_no_units_and_no_findings(tmp_path):
    assert Envelope().units(DataDir(tmp_path)) == []
    assert Envelope().render({}, tmp_path, tmp_path / "page.md").findings == []


def test_pruned_points_leave_the_intervals_unchanged():
    table = synthetic_table(n=80, seed=5)
    lambdas = np.geomspace(10.0, 3000.0, 7)
    pairs = pair_frontiers(table, table, lambdas, PredictorCache(table))
    whole = envelope(pairs, table, lambdas)
    full = (np.column_stack([o.cost for o in whole.outcomes]),
            np.column_stack([o.quality for o in whole.outcomes]))
    pruned = _matrices(whole)
    assert pruned[0].shape[1] < full[0].shape[1]
    cis = frontier_intervals({"full": full, "pruned": pruned}, table.cost, table.quality,
                             comparisons=[("full", "pruned")], b=200)
    assert cis["families"]["full"] == cis["families"]["pruned"]
    assert cis["comparisons"][0]["aiq"]["high"] == 0.0


@pytest.mark.slow
def test_gsm8k_runs_and_renders(shared_data, tmp_path):
    data = DataDir(shared_data)
    assert Envelope().units(data) == ["mmlu", "medmcqa", "triviaqa", "gsm8k"]
    out = tmp_path / "envelope"
    out.mkdir()
    run = Envelope().run("gsm8k", data, out)
    assert (out / "gsm8k.png").stat().st_size > 0
    assert run["n_pairs"] == 36 and run["n_test"] == 150
    assert run["diffs"][f"{ENV} − {FULL}"]["low"] > 0  # the full chain is below the envelope
    section = Envelope().render({"gsm8k": run}, out, tmp_path / "results.md")
    assert [f.claim for f in section.findings] == ["envelope", "shadow-price", "router-beats"]
    assert "![seed 003 comparison, gsm8k](envelope/gsm8k.png)" in section.markdown
