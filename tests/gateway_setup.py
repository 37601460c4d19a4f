"""A gateway over two fake models, fitted on a log collected from them: what the server
tests share (no weights, no network beyond loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ladder.collect import collect
from ladder.config import load_config
from ladder.rung import rungs_from_config
from ladder.tasks import load_tasks
from ladder.testing import write_sum_tasks

N_ITEMS = 120


def write_tasks(folder: Path) -> Path:
    """Short-answer items the fakes know: alternately train and test."""
    return write_sum_tasks(folder / "tasks.jsonl", N_ITEMS)


def gateway_config(folder: Path, *, log: bool = True, **server: Any) -> Path:
    """A config with a cheap and a dear fake, a threshold policy fitted on their log, and
    an online learner warm-started from it; `server` overrides server keys."""
    tasks = write_tasks(folder)
    models = [
        {"name": "small", "backend": "fake", "skill": 0.5, "seed": 1, "tasks": str(tasks),
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}},
        {"name": "big", "backend": "fake", "skill": 0.95, "seed": 2, "tasks": str(tasks),
         "price": {"input_per_mtok": 10.0, "output_per_mtok": 10.0}},
    ]
    config: dict[str, Any] = {"models": models, "task": {"type": "short"}}
    path = folder / "ladder.yaml"
    if log:
        path.write_text(yaml.safe_dump(config))
        runlog = folder / "log.jsonl"
        collect(load_tasks(tasks), rungs_from_config(load_config(path)), runlog)
        config["server"] = {
            "log": "log.jsonl",
            "policies": [
                {"name": "balanced", "fit": {"policy": "threshold", "lambda": 2000.0}},
                {"name": "learner", "online": {"chain": ["small", "big"], "lambda": 2000.0,
                                               "warm_start": "log.jsonl"}},
            ],
            "database": "sqlite:///gateway.db",
        }
    config.setdefault("server", {}).update(server)
    path.write_text(yaml.safe_dump(config))
    return path
