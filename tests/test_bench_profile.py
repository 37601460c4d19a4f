"""bench/profile_gateway.py's accounting: each py-spy sample goes to the innermost frame of
a known part, so the parts add up to every sample (no profiler is run here)."""

from __future__ import annotations

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
