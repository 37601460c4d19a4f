"""SIGKILL under load: `ladder serve` (SQLite) answers chat requests and feedback from 8
concurrent clients, is killed mid-load, and every feedback it acknowledged with 200 is in
the database. Requests are batched off the request path and may be lost by design; how
many is printed, not asserted."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import httpx
import pytest

from gateway_setup import gateway_config
from live import ladder_serve

CLIENTS, LOAD_S = 8, 3.0


async def load(url: str, until: float, acked: list[str], served: list[str]) -> None:
    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            n = 0
            while time.monotonic() < until:
                n += 1
                try:
                    answer = await http.post("/v1/chat/completions", json={
                        "model": "balanced" if n % 2 else "small",
                        "messages": [{"role": "user", "content": f"What is {n} + {n}?"}]})
                    if answer.status_code != 200:
                        continue
                    rid = answer.json()["id"]
                    served.append(rid)
                    label = await http.post("/v1/feedback", json={"id": rid, "quality": 1.0})
                    if label.status_code == 200:
                        acked.append(rid)
                except httpx.TransportError:
                    return  # the server is gone

    await asyncio.gather(*(client(k) for k in range(CLIENTS)))


@pytest.mark.slow
def test_every_acknowledged_feedback_survives_sigkill(tmp_path):
    config = gateway_config(tmp_path)
    acked: list[str] = []
    served: list[str] = []
    with ladder_serve(config) as (url, child):
        async def scenario() -> None:
            task = asyncio.ensure_future(load(url, time.monotonic() + 2 * LOAD_S, acked,
                                              served))
            await asyncio.sleep(LOAD_S)
            child.send_signal(signal.SIGKILL)  # mid-load: clients still sending
            await task

        asyncio.run(scenario())
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        labelled = {r for (r,) in db.execute("select request_id from feedback")}
        requests = {r for (r,) in db.execute("select id from requests")}
    lost = [rid for rid in acked if rid not in labelled]
    print(f"\n{len(acked)} feedback acknowledged, {len(lost)} lost; {len(served)} requests "
          f"answered, {len(set(served) - requests)} not in the database after SIGKILL")
    assert len(acked) >= 50 and lost == []
