"""Where a served request's time goes: py-spy samples the gateway process under wrk's load.

The same setup as `bench/gateway.py` (the fake upstream on loopback, `ladder serve --config`
with `small` → `big` as `openai` backends, the `stop` and `climb` cascades), one worker so
one process holds every thread. For each path, py-spy records the serving process while wrk
drives it (concurrency `--connections`, back to back: the CPU a request costs, which is what
bounds throughput and, on a busy core, latency); every sample is charged to the innermost
frame that belongs to a known part (the framework, JSON, the upstream client, the store,
metrics, the decision, the event loop), so the parts add up to 100% of the samples, idle
excluded. Prints Markdown: the parts per path, then the top functions by own time.
Usage: PYTHONPATH=src .venv/bin/python bench/profile_gateway.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench
from _common import machine

# a frame's part, by the file it runs in (first match wins, innermost frame first)
PARTS = (
    ("decision", ("ladder/policies/", "ladder/predictors", "ladder/signals", "sklearn/",
                  "numpy/", "scipy/", "ladder/runtime.py", "ladder/runlog/table.py")),
    ("upstream client", ("httpx/", "httpcore/", "h11/", "anyio/", "sniffio/",
                         "ladder/backends/")),
    ("store", ("sqlalchemy/", "ladder/server/writer.py", "ladder/server/store.py",
               "sqlite3/", "ladder/server/records.py")),
    ("metrics", ("prometheus_client/", "ladder/server/metrics.py")),
    ("JSON", ("json/", "orjson", "msgspec")),
    ("validation and models", ("pydantic/", "pydantic_core/", "ladder/server/protocol.py")),
    ("framework and server", ("fastapi/", "starlette/", "uvicorn/", "httptools/", "h11_impl",
                              "httptools_impl")),
    ("gateway logic", ("ladder/server/", "ladder/rung.py", "ladder/tasks/")),
    ("event loop", ("asyncio/", "uvloop/", "selectors.py", "concurrent/", "threading.py",
                    "queue.py")),
)
# py-spy from this interpreter's environment (the `dev` extra), else from PATH
SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def part(file: str) -> str | None:
    for name, needles in PARTS:
        if any(n in file for n in needles):
            return name
    return None


def charge(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """From py-spy's raw (collapsed) output: samples per part, per own function, total."""
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [FRAME.match(f.strip()) for f in stack.split(";")]
        frames = [f for f in frames if f is not None]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        own[f"{leaf['function']} ({_short(leaf['file'])})"] += n
        found = next((p for f in reversed(frames) if (p := part(f["file"])) is not None),
                     "other")
        parts[found] += n
    return parts, own, total


def _short(file: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def record(pid: int, seconds: float, out: Path, gil: bool) -> subprocess.Popen:
    """py-spy sampling every thread of `pid` (idle ones left out), or only the one holding
    the GIL (`gil`: Python's CPU, waits excluded), for `seconds`."""
    return subprocess.Popen([SPY, "record", "--pid", str(pid), "--duration",
                             str(round(seconds)), "--rate", "200", "--format", "raw",
                             "--output", str(out), *(["--gil"] if gil else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="sampled seconds per path")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=12, help="functions listed per path")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (Python's own CPU; a "
                        "thread blocked on a lock or in C without the GIL is left out)")
    args = parser.parse_args()
    if SPY is None:
        sys.exit("py-spy is not installed (pip install py-spy)")
    print(machine())
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; wrk -c{args.connections}, "
          f"{args.seconds:g} s sampled per path at 200 Hz"
          + (", GIL holder only" if args.gil else ", every non-idle thread"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="ladder-profile-") as tmp:
        folder = Path(tmp)
        with bench.upstream(folder) as (up, _):
            config, _ = bench.prepare(folder, up)
            with bench.gateway(config, 1) as (gw, pid):
                for path, model in (("pass-through", "small"), ("stop", "stop"),
                                    ("climb", "climb")):
                    bench.wrk(gw, model, folder, seconds=2, connections=args.connections,
                              delay_ms=0, watch={})  # warm
                    raw = folder / f"{model}.txt"
                    spy = record(pid, args.seconds, raw, args.gil)
                    run = bench.wrk(gw, model, folder, seconds=args.seconds + 1,
                                    connections=args.connections, delay_ms=0, watch={})
                    _, err = spy.communicate(timeout=args.seconds + 60)
                    if spy.returncode != 0:
                        sys.exit(f"py-spy failed: {err}")
                    results[path] = (run, *charge(raw))
    names = [name for name, _ in PARTS] + ["other"]
    print("\n| part (share of samples) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{parts[name] / total:.1%}"
                                          for _, parts, _, total in results.values()) + " |")
    print("| req/s under the profiler | " + " | ".join(f"{run.rps:.0f}"
                                                   for run, *_ in results.values()) + " |")
    for path, (_, _, own, total) in results.items():
        print(f"\n**{path}**, top functions by own time ({total:,} samples):\n")
        print("| own | function |\n|---|---|")
        for function, n in own.most_common(args.top):
            print(f"| {n / total:.1%} | `{function}` |")


if __name__ == "__main__":
    main()
