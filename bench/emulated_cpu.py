"""The embedded models on an emulated CPU of another kind, against this machine's own CPU:
does one llama.cpp build answer alike on both, bit for bit?

QEMU's user-mode emulator (`apt-get install qemu-user`) runs this interpreter as if on
`--cpu` (e.g. Haswell: an Intel CPU with AVX2 and no AVX-512). Both runs ask the same free-
text test questions as the default server does, through ladder's own `collect`; the table
compares every answer and signal exactly. A build that needs instructions the emulated CPU
lacks dies with an illegal instruction, which is reported as such. Emulation is about 30×
slower: keep `--items` small.

    .venv/bin/python bench/emulated_cpu.py [--cpu Haswell] [--items 6] [--python PY]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SIGNALS = ["answer", "text", "confidence", "logprob_mean", "logprob_min", "tokens_out"]


def worker(out: Path, items: int) -> None:
    from ladder.collect import collect
    from ladder.rung import rungs_from_config
    from ladder.server.default import free_text_items, models_config

    asked = [i for i in free_text_items() if i.meta["split"] == "test"][:items]
    collect(asked, rungs_from_config(models_config()), out)


def _run(command: list[str], out: Path, items: int) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run([*command, __file__, "--worker", str(out), "--items", str(items)],
                          stderr=subprocess.DEVNULL)
    return done.returncode, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", default="Haswell", help="a QEMU CPU model (qemu-x86_64 -cpu help)")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--python", default=sys.executable, help="the environment to run")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.items)
        return
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        sys.exit("qemu-x86_64 not found: apt-get install qemu-user")
    with tempfile.TemporaryDirectory() as tmp:
        host, emulated = Path(tmp) / "host.jsonl", Path(tmp) / "emulated.jsonl"
        host_rc, host_s = _run([args.python], host, args.items)
        rc, seconds = _run([qemu, "-cpu", args.cpu, args.python], emulated, args.items)
        print(f"{args.python}: host CPU rc {host_rc} in {host_s:.0f} s; emulated {args.cpu} "
              f"rc {rc} in {seconds:.0f} s")
        if rc == -signal.SIGILL or rc == 128 + signal.SIGILL:
            print(f"the build died on the emulated {args.cpu}: illegal instruction")
            return
        if rc or host_rc:
            sys.exit("a run failed")
        key = ["query_id", "model"]
        both = pd.read_json(host, lines=True).merge(pd.read_json(emulated, lines=True), on=key,
                                                    suffixes=("_host", "_emulated"))
    print(f"\n{len(both)} answers ({args.items} questions × 2 models); equal on both CPUs:\n")
    print("| signal | equal |\n|---|---|")
    for name in SIGNALS:
        a, b = both[f"{name}_host"], both[f"{name}_emulated"]
        equal = ((a == b) | (a.isna() & b.isna())).sum()
        print(f"| {name} | {equal} / {len(both)} |")


if __name__ == "__main__":
    main()
