"""Shared pieces of the benchmark scripts: data location, the Zellinger MMLU table,
the 5-model chain, machine description and percentile formatting."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import sklearn
from threadpoolctl import threadpool_info

from ladder.policies.dp import DPCascade
from ladder.policies.threshold import ThresholdCascade
from ladder.runlog import QueryTable, load_runlog

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ZELLINGER = DATA / "zellinger-cascades"
CHAIN = ["llama3.2-3b", "gpt-4o-mini", "llama3.1-8b", "qwen2.5-72b-instruct", "llama3.1-405b"]
LAM = 300.0


def require_data() -> Path:
    """The Zellinger log folder; exits non-zero (status 1) with a message when it is missing."""
    if not ZELLINGER.is_dir():
        sys.exit(f"benchmark data not found: {ZELLINGER} (expected ../shared/data next to the "
                 "repository; see bench/README.md)")
    return ZELLINGER


def load_mmlu() -> QueryTable:
    """Zellinger MMLU, all nine models (285 train + 1,531 test queries)."""
    return QueryTable.from_runlog(load_runlog(require_data()), benchmark="mmlu")


def fitted_policies() -> tuple[QueryTable, ThresholdCascade, DPCascade]:
    """The MMLU test split and both cascades on CHAIN at LAM, fitted on the train split."""
    table = load_mmlu()
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    return test, ThresholdCascade(CHAIN, LAM).fit(train), DPCascade(CHAIN, LAM).fit(train)


def machine() -> str:
    """One line: cores, CPU model, Python, numpy and scikit-learn versions, BLAS threads,
    1-minute load average (other processes share the machine)."""
    cpu = platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pools = {f"{p['internal_api']} {p['num_threads']} threads"
             for p in threadpool_info() if p["user_api"] == "blas"}
    blas = ", ".join(sorted(pools)) or "no BLAS found"
    return (f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}, "
            f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, {blas}, "
            f"load average {os.getloadavg()[0]:.1f}")


def percentiles_us(ns: np.ndarray) -> tuple[float, float, float]:
    """p50, p90, p99 of nanosecond timings, in µs."""
    p50, p90, p99 = np.percentile(ns, [50, 90, 99]) / 1e3
    return float(p50), float(p90), float(p99)
