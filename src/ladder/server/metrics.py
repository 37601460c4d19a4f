"""The gateway's Prometheus metrics. Labels are policy and model names and outcomes only:
never a key, a prompt or a request id (unbounded label values grow memory without end).

With several workers each process writes to `$PROMETHEUS_MULTIPROC_DIR` (set by `ladder
serve --workers`), and /metrics aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                   10, 30, 60)

REQUESTS = Counter("ladder_requests_total", "Requests served", ["policy", "model", "status"])
LATENCY = Histogram("ladder_request_seconds", "Request wall time", ["policy"],
                    buckets=LATENCY_BUCKETS)
OVERHEAD = Histogram("ladder_overhead_seconds", "Time spent outside the models' calls",
                     ["policy"], buckets=LATENCY_BUCKETS)
STAGES = Counter("ladder_stages_total", "Rungs run", ["policy", "model", "decision"])
COST = Counter("ladder_cost_total", "Cost of the models' calls", ["policy"])
SAVED = Counter("ladder_saved_total", "Estimated cost saved against the top rung", ["policy"])
FEEDBACK = Counter("ladder_feedback_total", "Feedback rows recorded", ["outcome"])
IN_FLIGHT = Gauge("ladder_in_flight", "Requests in flight", multiprocess_mode="livesum")
REJECTED = Counter("ladder_rejected_total", "Requests refused before running", ["reason"])


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type (every worker's, when there are several)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
