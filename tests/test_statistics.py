"""The statistics module against scipy and hand-computed cases, and the seed-001 table
on a small synthetic log (operating point chosen on train)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ladder.evaluate.experiment import Evaluation, PolicyPoint, evaluate
from ladder.evaluate.intervals import Resamples, mean_interval
from ladder.policies.base import Outcome
from ladder.runlog.table import SIGNAL_COLUMNS, QueryTable
from ladder.statistics import (
    choose_point,
    cohens_dz,
    compare,
    compare_all,
    holm,
    latex_escape,
    one_model_run,
    paired_t,
    quality_preserved,
    seed001_table,
    to_latex,
    to_markdown,
    wilcoxon,
)


def outcome(cost: np.ndarray, quality: np.ndarray, last_run: np.ndarray | None = None) -> Outcome:
    run = np.zeros(len(cost), int) if last_run is None else last_run
    return Outcome(run, run, np.asarray(quality, float), np.asarray(cost, float))


@pytest.mark.parametrize("seed", range(5))
def test_tests_match_scipy(seed: int) -> None:
    r = np.random.default_rng(seed)
    a, b = r.normal(size=40), r.normal(0.3, 1.0, size=40)
    t, w = paired_t(a, b), wilcoxon(a, b)
    want_t, want_w = stats.ttest_rel(a, b), stats.wilcoxon(a - b)
    assert (t.statistic, t.p) == pytest.approx((want_t.statistic, want_t.pvalue), rel=1e-12)
    assert (w.statistic, w.p) == pytest.approx((want_w.statistic, want_w.pvalue), rel=1e-12)
    assert t.note == w.note == ""


def test_wilcoxon_with_ties_and_zeros_matches_scipy() -> None:
    r = np.random.default_rng(7)
    a, b = r.integers(0, 2, 300).astype(float), r.integers(0, 2, 300).astype(float)
    assert wilcoxon(a, b).p == pytest.approx(stats.wilcoxon(a - b).pvalue, rel=1e-12)


def test_dz_by_hand() -> None:
    a, b = np.array([3.0, 5.0, 7.0, 9.0]), np.array([2.0, 3.0, 4.0, 5.0])  # d = 1, 2, 3, 4
    assert cohens_dz(a, b) == pytest.approx(2.5 / math.sqrt(5.0 / 3.0), rel=1e-12)
    assert cohens_dz(b, a) == pytest.approx(-2.5 / math.sqrt(5.0 / 3.0), rel=1e-12)


def test_zero_and_constant_differences() -> None:
    a = np.array([0.2, 0.4, 0.9])
    for test in (paired_t(a, a), wilcoxon(a, a)):
        assert test.p == 1.0 and test.statistic is None and "zero" in test.note
    assert cohens_dz(a, a) is None
    shifted = paired_t(a + 1.0, a)
    assert shifted.p == 0.0 and shifted.statistic == math.inf and "constant" in shifted.note
    assert cohens_dz(a + 1.0, a) is None  # sd = 0: undefined, not infinite
    with pytest.raises(ValueError):
        paired_t(a, a[:2])


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_constant_difference_gives_zero_width_intervals() -> None:
    r = np.random.default_rng(0)
    base_cost, base_q = r.uniform(1, 2, 50), r.uniform(0, 1, 50)
    ours, base = outcome(base_cost / 4, base_q + 0.1), outcome(base_cost, base_q)
    row = compare("base", ours, base, Resamples.draw(50, 2000, 0))
    assert row.speedup == pytest.approx({"point": 4.0, "low": 4.0, "high": 4.0})
    assert row.quality_diff == pytest.approx({"point": 0.1, "low": 0.1, "high": 0.1})
    assert quality_preserved(row.quality_diff, 0.0)


def test_symmetric_case_brackets_the_mean_and_ratio_matches() -> None:
    r = np.random.default_rng(1)
    base_cost, ours_cost = r.uniform(1, 3, 400), r.uniform(0.5, 1.5, 400)
    d = np.r_[r.normal(0, 1, 200), -r.normal(0, 1, 200)] * 0.05  # symmetric about ~0
    ours, base = outcome(ours_cost, 0.5 + d), outcome(base_cost, np.full(400, 0.5))
    rs = Resamples.draw(400, 2000, 3)
    row = compare("base", ours, base, rs)
    q = row.quality_diff
    assert q["low"] < d.mean() < q["high"] and q["low"] < 0 < q["high"]
    s = row.speedup
    assert s["point"] == pytest.approx(base_cost.mean() / ours_cost.mean())
    assert s["low"] < s["point"] < s["high"]
    replicates = rs.means(base_cost) / rs.means(ours_cost)  # the ratio of means, per resample
    assert s["low"] >= replicates.min() and s["high"] <= replicates.max()
    assert quality_preserved(q, 0.05) is True and quality_preserved(q, 0.0) is False
    assert quality_preserved({"low": None}, 0.01) is None


def test_compare_all_holm_over_the_table_and_first_stop() -> None:
    r = np.random.default_rng(2)
    n = 120
    ours = outcome(r.uniform(1, 2, n), r.integers(0, 2, n).astype(float))
    baselines = {f"b{i}": outcome(r.uniform(1, 3, n), r.integers(0, 2, n).astype(float))
                 for i in range(3)}
    first = r.random(n) < 0.6
    table = compare_all("ours", ours, baselines, stopped_first=first)
    raw = [c.tests[t].p for c in table.comparisons for t in ("cost_t", "cost_w", "quality_t",
                                                               "quality_w")]
    adjusted = [c.adjusted[t] for c in table.comparisons for t in ("cost_t", "cost_w",
                                                                    "quality_t", "quality_w")]
    assert adjusted == pytest.approx(holm(raw))
    assert all(a >= p for a, p in zip(adjusted, raw, strict=True))
    assert table.first_stop == mean_interval(Resamples.draw(n, 2000, 0), first, 0.95)
    assert table.first_stop["low"] < first.mean() < table.first_stop["high"]
    with pytest.raises(ValueError):
        compare_all("ours", ours, baselines, b=1000)


def test_latex_escaping() -> None:
    assert latex_escape("a_b & 50% #1 $x$ {y} ~^\\") == (
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}")
    assert latex_escape("2.0× −0.1 Δ λ — <0.001") == (
        r"2.0$\times$ $-$0.1 $\Delta$ $\lambda$ --- \textless{}0.001")


def test_renderings_identical_rows() -> None:
    n = 30
    same = outcome(np.full(n, 2.0), np.linspace(0, 1, n))
    table = compare_all("p_1", same, {"Fixed a_b": same}, margin=0.02)
    row = table.comparisons[0]
    assert row.adjusted == {t: 1.0 for t in row.adjusted}
    assert row.cost_dz is None and row.speedup["point"] == 1.0
    assert any("zero" in note for note in table.notes)
    md, tex = to_markdown(table), to_latex(table)
    assert "| Fixed a_b | " in md and "1.00× [1.00×, 1.00×]" in md
    assert "within 2 pt" in md and "| yes |" in md
    assert r"Fixed a\_b &" in tex and r"\begin{tabular}{lrrrrrrrrr}" in tex
    assert "_" not in tex.split(r"\begin{tabular}")[1].replace(r"\_", "")


def point(family: str, lam: float, cost: float, quality: float, train_cost: float,
          train_quality: float, chain: tuple[str, ...] = ()) -> PolicyPoint:
    return PolicyPoint(family, lam, cost, quality, train_cost, train_quality, chain, {})


def test_choose_point_uses_train_only() -> None:
    points = [point("fixed", 0.0, 1.0, 0.5, 1.0, 0.5, ("a",)),
              point("fixed", 0.0, 9.0, 0.9, 9.0, 0.8, ("b",)),
              # best on test, and cheapest, but below 95% of 0.8 on train: never chosen
              point("auto", 1.0, 1.5, 0.95, 1.5, 0.70),
              point("auto", 2.0, 3.0, 0.80, 3.0, 0.77),
              point("auto", 3.0, 4.0, 0.85, 4.0, 0.79)]
    evaluation = Evaluation(0, 0, 0, "", [], points, {}, [])
    index, how = choose_point(evaluation, "auto", 0.95)
    assert index == 3 and "in-sample train" in how and "0.7700" in how
    index, how = choose_point(evaluation, "auto", 1.0)  # none reaches: the most accurate
    assert index == 4 and "none reaches" in how


def synthetic(n: int = 160, seed: int = 0) -> tuple[QueryTable, QueryTable]:
    """Three models of rising cost and accuracy, confidence informative; halves."""
    r = np.random.default_rng(seed)
    hard = r.random(n)
    correct = (r.random((n, 3)) * 0.6 + 0.4 * hard[:, None] < [0.35, 0.6, 0.85]).astype(float)
    signals = {name: np.full((n, 3), np.nan) for name in SIGNAL_COLUMNS}
    signals["confidence"] = np.clip(0.5 * correct + 0.5 * r.random((n, 3)), 0, 1)
    cost = np.array([1e-5, 1e-4, 1e-3]) * r.uniform(0.8, 1.2, (n, 3))
    table = QueryTable(np.arange(n).astype(str).astype(object), ("tiny", "mid", "big"),
                       correct, cost, signals)
    half = np.arange(n) < n // 2
    return table.rows(half), table.rows(~half)


def test_seed001_table_end_to_end() -> None:
    train, test = synthetic()
    evaluation = evaluate(train, test, families=("fixed", "auto"), n_lambdas=3, max_stages=2,
                          n_resamples=0, n_jobs=1)
    table, chosen = seed001_table(evaluation, train, test)
    assert chosen.family == "auto"
    assert [c.baseline for c in table.comparisons] == [
        "Fixed tiny", "Fixed mid", "Fixed big", "Random (cost-matched)"]
    ours = evaluation.outcomes[evaluation.points.index(chosen)]
    big = table.row("Fixed big")
    assert big.base_cost == pytest.approx(test.cost[:, 2].mean())
    assert big.speedup["point"] == pytest.approx(test.cost[:, 2].mean() / ours.mean_cost)
    assert table.first_stop["point"] == pytest.approx(one_model_run(test, ours).mean())
    assert "chosen" not in table.notes[0] and "λ" in table.notes[0]
    assert to_markdown(table).count("\n| ") == 5
