"""The gateway store: batched request writes (rows/s) and feedback acknowledgement latency.

    .venv/bin/python bench/store_throughput.py [--database URL] [--requests N] [--feedback M]

Default database: a SQLite file in a temp dir. A request is written with two stages.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from ladder.server.records import FeedbackRecord, RequestRecord, StageRecord
from ladder.server.store import Store


def request(i: int) -> RequestRecord:
    stages = tuple(StageRecord(s, m, "4", "The answer is 4.", {"confidence": 0.8,
                                                               "logprob_mean": -0.1},
                               0.7, "escalate" if s == 0 else "stop", None, 0.001 * 10 ** s,
                               0.05, 40.0, 6.0) for s, m in enumerate(("small", "large")))
    return RequestRecord(f"bench-{i}", time.time(), "r0", "k1", "online", "cascade", "chat",
                         "What is 2 + 2? " * 8, "large", 1, 0.011, 0.0, 200, None, 0.1,
                         0.001, stages, 120)


async def acks(store: Store, ids: list[str], concurrent: int) -> np.ndarray:
    """Latency of each acknowledgement, `concurrent` in flight at a time."""
    latencies: list[float] = []

    async def one(request_id: str) -> None:
        start = time.perf_counter()
        assert await store.add_feedback(FeedbackRecord(request_id, 1.0, time.time(), None))
        latencies.append(time.perf_counter() - start)

    for i in range(0, len(ids), concurrent):
        await asyncio.gather(*(one(r) for r in ids[i: i + concurrent]))
    return np.array(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--feedback", type=int, default=500)
    args = parser.parse_args()
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    with Store(url) as store:
        records = [request(i) for i in range(args.requests)]
        start = time.perf_counter()
        for record in records:
            store.submit(record)
        submitted = time.perf_counter() - start
        store.flush(timeout=600)
        elapsed = time.perf_counter() - start
        stats = store.stats()
        print(f"database: {store.name}")
        print(f"| requests | submit µs/row | rows/s (requests) | transactions | stalls |\n"
              f"|---|---|---|---|---|\n| {args.requests:,} | "
              f"{1e6 * submitted / args.requests:.1f} | {args.requests / elapsed:,.0f} | "
              f"{stats['transactions']} | {stats['stalls']} |")
        print("\n| feedback in flight | p50 ms | p99 ms |\n|---|---|---|")
        for concurrent in (1, 32):
            ms = asyncio.run(acks(store, [r.id for r in records[: args.feedback]], concurrent))
            print(f"| {concurrent} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} |")


if __name__ == "__main__":
    main()
