"""Pyramid MoA's performance profile and monotonicity table (theory.md §5, seed 004 §2.3).

Theorem 1 of the seed: with R the escalated queries, p_R = |R|/N, α_L1(R) and α_L2(R) layer 1's
and the oracle's accuracy on R,

    Acc_MoA − Acc_L1 = p_R · (α_L2(R) − α_L1(R)) = ΔAcc,

so escalating helps on average iff α_L2(R) ≥ α_L1(R) ("satisfied"). The profile sweeps the
direct threshold t and reports accuracy and the saving against always calling the oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ladder.policies.moa import PyramidMoA, layer_answer
from ladder.runlog.table import QueryTable

PROFILE_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def monotonicity(escalated: np.ndarray, l1_quality: np.ndarray,
                 l2_quality: np.ndarray) -> dict:
    """One row of the monotonicity table: p_R, α_L1(R), α_L2(R), gap = α_L2(R) − α_L1(R),
    ΔAcc = p_R·gap, and satisfied = (gap ≥ 0); α, gap and satisfied are None when nothing is
    escalated (ΔAcc is then 0)."""
    escalated = np.asarray(escalated, dtype=bool)
    p_r = float(escalated.mean())
    if not escalated.any():
        return {"p_R": 0.0, "alpha_L1_R": None, "alpha_L2_R": None, "gap": None,
                "delta_acc": 0.0, "satisfied": None}
    a1 = float(np.mean(np.asarray(l1_quality)[escalated]))
    a2 = float(np.mean(np.asarray(l2_quality)[escalated]))
    return {"p_R": p_r, "alpha_L1_R": a1, "alpha_L2_R": a2, "gap": a2 - a1,
            "delta_acc": p_r * (a2 - a1), "satisfied": bool(a2 >= a1)}


def performance_profile(policy: PyramidMoA, table: QueryTable,
                        thresholds: Sequence[float] = PROFILE_THRESHOLDS) -> list[dict]:
    """Per threshold t: accuracy, mean cost, saving against the oracle alone
    (1 − cost / oracle cost), escalation rate and the monotonicity row, on `table`."""
    members = [table.index(m) for m in policy.layer1_]
    oracle = table.index(policy.oracle_)
    rows = np.arange(table.n)
    l1 = table.quality[rows, layer_answer(table, members)]
    l2 = table.quality[:, oracle]
    oracle_cost = float(table.cost[:, oracle].mean())
    p_fail = policy.p_fail(table)
    out = []
    for t in thresholds:
        outcome = policy.at(threshold=t).replay(table)
        escalated = p_fail > t
        out.append({"t": float(t), "accuracy": outcome.mean_quality, "cost": outcome.mean_cost,
                    "savings": 1.0 - outcome.mean_cost / oracle_cost if oracle_cost > 0
                    else None, "escalation_rate": float(escalated.mean()),
                    **monotonicity(escalated, l1, l2)})
    return out


def reference_points(policy: PyramidMoA, table: QueryTable) -> dict:
    """Layer 1 alone and the oracle alone on `table`: the profile's two ends."""
    members = [table.index(m) for m in policy.layer1_]
    oracle = table.index(policy.oracle_)
    l1 = table.quality[np.arange(table.n), layer_answer(table, members)]
    return {"layer1_accuracy": float(l1.mean()),
            "layer1_cost": float(table.cost[:, members].sum(axis=1).mean()),
            "oracle_accuracy": float(table.quality[:, oracle].mean()),
            "oracle_cost": float(table.cost[:, oracle].mean())}


def plot_profile(profile: Sequence[dict], references: dict, path: Path, title: str) -> Path:
    """Accuracy and savings against t (the seed's dual-axis figure), the oracle's and
    layer 1's accuracy as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] for r in profile]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(t, [r["accuracy"] for r in profile], "o-", color="tab:red", label="accuracy")
    ax.axhline(references["oracle_accuracy"], color="tab:red", ls="--", lw=1,
               label="oracle alone")
    ax.axhline(references["layer1_accuracy"], color="tab:gray", ls=":", lw=1,
               label="layer 1 alone")
    ax.set_xlabel("threshold t (escalate when P_fail > t)")
    ax.set_ylabel("accuracy")
    right = ax.twinx()
    right.plot(t, [r["savings"] for r in profile], "s-", color="tab:green", label="savings")
    right.set_ylabel("saving vs the oracle alone")
    lines = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
