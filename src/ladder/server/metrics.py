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
SHADOW_RUNS = Counter("ladder_shadow_runs_total", "Shadow runs begun and ended",
                      ["outcome"])  # started, finished
SHADOW_DROPPED = Counter("ladder_shadow_dropped_total", "Shadow runs given up", ["reason"])
SHADOW_LABELS = Counter("ladder_shadow_labels_total", "Judge labels stored", ["source"])
SHADOW_RUNG_FAILURES = Counter("ladder_shadow_rung_failures_total",
                               "Rungs a shadow run could not run (their cells stay unlabelled)",
                               ["model"])
JUDGE_FAILURES = Counter("ladder_judge_failures_total",
                         "Labels the judge could not give (the cell stays unlabelled)", ["kind"])
SHADOW_COST = Counter("ladder_shadow_cost_total",
                      "Cost of shadow runs: the rungs run and the judge's calls")
# a mean is not summed across workers: each worker's own (livemax: the dearest one)
SHADOW_COST_PER_REQUEST = Gauge("ladder_shadow_cost_per_request",
                                "Shadow cost per cascade request served (this process)",
                                multiprocess_mode="livemax")
REFITS = Counter("ladder_learner_refits_total", "Online policies refitted", ["policy"])
THRESHOLD = Gauge("ladder_learner_threshold", "The online policy's stop threshold per stage",
                  ["policy", "stage"], multiprocess_mode="livemostrecent")


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type (every worker's, when there are several)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
