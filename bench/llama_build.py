"""Two llama.cpp builds side by side: speed of the embedded models and how often they answer
alike (e.g. the portable AVX2 build the README installs against a native AVX-512 one).

Each `--python` is the interpreter of a virtual environment with ladder and one build of
llama-cpp-python. Every repeat runs both, one after the other (the order alternates), in a
fresh process: both embedded models answer the same test questions as the default server
asks them (free text, greedy, up to 32 tokens) and as the demo scores them (the options'
log-likelihood), through ladder's own `collect`. Reported: each build's median seconds per
question (for free text also per generated token, since builds that answer differently
generate different lengths), the ratio, and the share of answers equal between the builds
and between repeats of one build.

    .venv/bin/python bench/llama_build.py --python .venv/bin/python \
        --python .venv-native/bin/python [--items 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = ("free text", "options")


def worker(out: Path, items: int) -> None:
    """Collect both models on the first `items` test questions, both ways, into `out`."""
    from ladder.backends.build import llama_build
    from ladder.collect import collect
    from ladder.demo import MODELS, demo_config, demo_items
    from ladder.rung import rungs_from_config
    from ladder.server.default import free_text_items, models_config

    free = [i for i in free_text_items() if i.meta["split"] == "test"][:items]
    asked = {i.id for i in free}
    choice = [i for i in demo_items() if i.id in asked]  # the same questions, with options
    collect(free, rungs_from_config(models_config()), out / "free text.jsonl")
    collect(choice, rungs_from_config(demo_config(), list(MODELS)), out / "options.jsonl")
    (out / "build.json").write_text(json.dumps(llama_build().to_dict()))


def _run(python: str, out: Path, items: int) -> None:
    subprocess.run([python, __file__, "--worker", str(out), "--items", str(items)], check=True)


def _logs(folder: Path) -> dict[str, pd.DataFrame]:
    return {task: pd.read_json(folder / f"{task}.jsonl", lines=True) for task in TASKS}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Share of (question, model) rows whose answers are equal (both empty counts)."""
    key = ["query_id", "model"]
    both = a.merge(b, on=key, suffixes=("_a", "_b"))
    return float((both["answer_a"].fillna("") == both["answer_b"].fillna("")).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=[], help="an environment's python")
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.items)
        return
    if len(args.python) != 2:
        sys.exit("give two environments: --python A --python B")
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[int, list[Path]] = {0: [], 1: []}
        for repeat in range(args.repeats):
            order = (0, 1) if repeat % 2 == 0 else (1, 0)
            for k in order:
                folder = Path(tmp) / f"{k}-{repeat}"
                _run(args.python[k], folder, args.items)
                runs[k].append(folder)
        builds = [json.loads((runs[k][0] / "build.json").read_text()) for k in (0, 1)]
        logs = {k: [_logs(f) for f in runs[k]] for k in (0, 1)}
    print(f"{args.items} test questions, {args.repeats} repeats, interleaved")
    for k, build in enumerate(builds):
        print(f"- build {'AB'[k]}: llama-cpp-python {build['llama_cpp_python']}, "
              f"{' '.join(build['features'])}, on {build['cpu']} ({args.python[k]})")
    print("\n| task | model | A s/question | B s/question | B / A | A ms/token out | "
          "B ms/token out | B / A | answers equal A–B | A–A | B–B |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        for model in sorted(logs[0][0][task]["model"].unique()):
            def seconds(k: int, model: str = model, task: str = task) -> float:
                return float(np.median([
                    log[task].loc[log[task]["model"] == model, "latency_ms"].median() / 1000
                    for log in logs[k]]))

            def per_token(k: int, model: str = model, task: str = task) -> float:
                """ms per generated token: all rows' time over all generated tokens."""
                ms = [log[task].loc[log[task]["model"] == model, ["latency_ms", "tokens_out"]]
                      .sum() for log in logs[k]]
                return float(np.median([m["latency_ms"] / max(m["tokens_out"], 1)
                                        for m in ms]))

            def rows(k: int, r: int, model: str = model, task: str = task) -> pd.DataFrame:
                log = logs[k][r][task]
                return log[log["model"] == model]

            a, b = seconds(0), seconds(1)
            within = [_same(rows(k, 0), rows(k, 1)) if args.repeats > 1 else float("nan")
                      for k in (0, 1)]
            tokens = "| — | — | — " if task == "options" else (
                f"| {per_token(0):.1f} | {per_token(1):.1f} | {per_token(1) / per_token(0):.2f} ")
            print(f"| {task} | {model} | {a:.3f} | {b:.3f} | {b / a:.2f} {tokens}| "
                  f"{_same(rows(0, 0), rows(1, 0)):.3f} | {within[0]:.3f} | {within[1]:.3f} |")


if __name__ == "__main__":
    main()
