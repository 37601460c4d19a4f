"""`ladder serve` with no config labels its own traffic: 200 free-text requests to the
embedded default's `ladder-online` leave judge labels in the database and move the online
policy's thresholds, and no response waits for the shadow work (p50 latency against a run
with `--shadow-rate 0`)."""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("llama_cpp")
from prometheus_client.parser import text_string_to_metric_families

from ladder.server.default import free_text_items
from live import ladder_serve

pytestmark = pytest.mark.slow
N = 200
WARMUP = 5  # requests before timing: the models load on their first call
MAX_TOKENS = 8  # short answers keep the run within minutes on 2 cores
POLICY = "ladder-online"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def serve_traffic(home: Path, *options: str) -> tuple[list[float], list[float], dict, dict,
                                                     float]:
    """Start `ladder serve` (the embedded default), send the requests one after another,
    wait for the shadow runs to finish; the latencies (s), each request's time outside its
    own model calls (s: a wait for shadow work would show there), the metrics before and
    after, and the seconds the shadow runs took beyond the last response."""
    prompts = [item.prompt for item in free_text_items()[: N + WARMUP]]
    with ladder_serve(None, *options, home=home, timeout_s=180) as (url, _), \
            httpx.Client(base_url=url, timeout=120) as client:
        latencies, outside = [], []
        for k, prompt in enumerate(prompts):
            start = time.perf_counter()
            response = client.post("/v1/chat/completions", json={
                "model": POLICY, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": prompt}]})
            assert response.status_code == 200, response.text
            if k == WARMUP - 1:
                before = scrape(url)
            elif k >= WARMUP:
                latencies.append(time.perf_counter() - start)
                stages = response.json()["ladder"]["stages"]
                outside.append(latencies[-1] - sum(s["latency_ms"] for s in stages) / 1000)
        done = time.perf_counter()
        while True:  # the shadow runs left waiting drain once the traffic pauses
            after = scrape(url)
            started = value(after, "ladder_shadow_runs_total", outcome="started")
            if started == value(after, "ladder_shadow_runs_total", outcome="finished"):
                break
            assert time.perf_counter() - done < 120, "shadow runs never finished"
            time.sleep(0.2)
        drained = time.perf_counter() - done
        while started and not value(after, "ladder_learner_refits_total", policy=POLICY):
            assert time.perf_counter() - done < 150, "the online policy never refitted"
            time.sleep(0.2)  # the learner syncs every server.sync_s
            after = scrape(url)
    return latencies, outside, before, after, drained


def test_embedded_default_labels_its_traffic_and_learns(tmp_path: Path) -> None:
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    began = time.perf_counter()
    off, _, _, quiet, _ = serve_traffic(tmp_path / "off", "--shadow-rate", "0")
    on, outside, before, after, drain = serve_traffic(tmp_path / "on")
    total = time.perf_counter() - began
    assert value(quiet, "ladder_shadow_runs_total", outcome="started") == 0

    with sqlite3.connect(tmp_path / "on" / "ladder.db") as db:
        sources = dict(db.execute("select coalesce(source, 'human'), count(*) from feedback "
                                  "group by 1").fetchall())
        shadow_stages = db.execute("select count(*) from stages where decision = 'shadow'"
                                   ).fetchone()[0]
    assert sum(sources.values()) > 0 and set(sources) <= {"reference", "judge"}
    started = value(after, "ladder_shadow_runs_total", outcome="started")
    assert started > 0 and shadow_stages > 0

    refits = value(after, "ladder_learner_refits_total", policy=POLICY)
    moved = [value(before, "ladder_learner_threshold", policy=POLICY, stage=s)
             != value(after, "ladder_learner_threshold", policy=POLICY, stage=s)
             for s in ("0", "1")]
    assert refits > 0 and any(moved), (refits, moved)

    p50_on, p50_off = statistics.median(on), statistics.median(off)
    ratio = p50_on / p50_off
    print(f"\nshadow on: p50 {1000 * p50_on:.0f} ms, p90 "
          f"{1000 * statistics.quantiles(on, n=10)[-1]:.0f} ms; off: p50 {1000 * p50_off:.0f} "
          f"ms, p90 {1000 * statistics.quantiles(off, n=10)[-1]:.0f} ms; ratio {ratio:.2f}; "
          f"outside the models' calls: at most {1000 * max(outside):.0f} ms; "
          f"labels {sources}; shadow runs {started:.0f} (dropped "
          f"{sum(v for (n, _), v in after.items() if n == 'ladder_shadow_dropped_total'):.0f})"
          f", refits {refits:.0f}; drain {drain:.0f} s; total {total:.0f} s")
    assert ratio < 1.5
    assert max(outside) < 0.05  # no request waited for a shadow call on its models
