"""Test and benchmark helpers: a fake OpenAI-compatible upstream server (`fake_openai`) and
the short-answer questions the fakes are asked."""

from __future__ import annotations

import json
from pathlib import Path


def write_sum_tasks(path: Path, n: int) -> Path:
    """`n` short-answer questions ("What is k + k?", answer "n{2k}": a token no model would
    guess, so only a fake that knows the task file answers it), alternately train and test."""
    with path.open("w") as f:
        for k in range(n):
            f.write(json.dumps({"id": f"q{k}", "type": "short", "prompt": f"What is {k} + {k}?",
                                "reference": f"n{2 * k}",
                                "split": "train" if k % 2 == 0 else "test"}) + "\n")
    return path
