"""bench/profile_gateway.py's accounting: each py-spy sample goes to the innermost frame of
a known part, so the parts add up to every sample (no profiler is run here); and
bench/upstream_clients.py prints a row per installed client (no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from profile_gateway import charge  # noqa: E402


def test_samples_go_to_the_innermost_known_part(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (asyncio/runners.py:118);respond (ladder/server/serving.py:200);"
        "decide (ladder/policies/threshold.py:50);full (numpy/_core/numeric.py:3) 7\n"
        "run (asyncio/runners.py:118);respond (ladder/server/serving.py:200);"
        "send (httpx/_client.py:10);_send (h11/_connection.py:5) 5\n"
        "run (asyncio/runners.py:118);app (fastapi/routing.py:300);"
        "dumps (json/__init__.py:231) 2\n"
        "_worker (concurrent/futures/thread.py:83);commit (sqlalchemy/engine/base.py:9) 3\n"
        "main (somewhere/else.py:1) 1\n"
        "not a sample line\n")
    parts, own, total = charge(raw)
    assert total == 18 and sum(parts.values()) == total
    assert parts == {"decision": 7, "upstream client": 5, "JSON": 2, "store": 3, "other": 1}
    assert own["full (numpy/_core/numeric.py)"] == 7
    assert own["_send (h11/_connection.py)"] == 5


def test_upstream_clients_prints_a_row_per_client() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "upstream_clients.py"),
                           "--calls", "20", "--rounds", "1"], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| httpx",
                                                                           "| httpcore",
                                                                           "| aiohttp"))]
    assert len(rows) >= 2 and "least CPU a call" in done.stdout
