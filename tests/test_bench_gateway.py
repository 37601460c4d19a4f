"""bench/gateway.py runs: its options parse, and a tiny latency run against the fake
upstream and `ladder serve` prints the table and the verdicts (no timing is asserted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gateway.py"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_help_lists_the_options() -> None:
    done = _run("--help", timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--rate", "--concurrency", "--workers", "--requests", "--quick"):
        assert option in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_quick_latency_run_prints_every_path() -> None:
    done = _run("--quick", "--skip", "throughput", "memory", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for path in ("| direct |", "| pass-through |", "| cascade, stops at rung 1 |",
                 "| cascade, climbs to rung 2 |", "| cascade, stops, shadow rate 0 |",
                 "| cascade, stops, shadow rate 0.05 |", "| cascade, stops, shadow rate 1 |"):
        assert path in out
    assert out.count("p50 (≤ 1)") == 3 and "targets met:" in out
    failed = [line.rsplit("|", 2)[1].strip() for line in out.splitlines()
              if line.startswith("| direct") or line.startswith("| cascade")
              or line.startswith("| pass")]
    assert failed == ["0"] * 14  # every request answered 2xx, paced and back to back
    assert "shadow runs at rate 0.05 add ≤ 0.2 ms p50" in out
    assert "rate 0: no shadow runs" in out and "ladder_shadow_runs_total" in out
    assert "`stop` runs small:stop" in out and "`climb` runs small:escalate → big:stop" in out
