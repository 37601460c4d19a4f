"""The gateway under load (wrk): added latency at a fixed rate, throughput, memory growth.

    .venv/bin/python bench/gateway.py [--rate 200] [--duration 10] [--repeats 3]
        [--concurrency 64] [--throughput-s 20] [--workers 2] [--warmup 10000]
        [--requests 100000]

Everything runs on this machine over loopback: the fake OpenAI upstream
(`python -m ladder.testing.fake_openai`, its own process), `ladder serve` (a subprocess,
its models `openai` backends pointing at the upstream) and wrk. No model weights: the two
policies are threshold cascades over the upstream's models `small` → `big`, fitted on a
log collected from in-process fakes of the same names, with the first threshold then set
to −∞ (`stop`: every request is one upstream call plus one decision) or +∞ (`climb`: two
upstream calls, a decision after each). Three more gateways of the same config, each with
its own database, serve the same `stop` path, interleaved with the rest: shadow runs at rate
0 (off: the control), at the config's default rate 0.05 and at rate 1 (every request
shadowed: `big` run after the response, graded by agreement). What shadow runs add to a
served request = a shadowing gateway's latency − the control's, repeat by repeat.
`--quick` runs a tiny version (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _common import machine  # noqa: E402
from ladder.server.upstream import free_port, stop  # noqa: E402

TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "rps": 1500.0, "rss_growth": 0.10,
           "shadow_p50_ms": 0.2}
SHADOW_RATES = (0.0, 0.05, 1.0)  # the shadowing gateways' rates: 0 is the control


def shadowed(rate: float) -> str:
    """The latency tables' name of the `stop` path on the gateway shadowing at `rate`."""
    return f"cascade, stops, shadow rate {rate:g}"


PROMPT = "What is 21 + 21?"
LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
local pause = %(delay_ms)s
if pause > 0 then function delay() return pause end end
function done(summary, latency, requests)
  io.write(string.format("LADDER requests=%%d errors=%%d status=%%d p50=%%d p90=%%d p99=%%d\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status, latency:percentile(50),
    latency:percentile(90), latency:percentile(99)))
end
"""
LINE = re.compile(r"LADDER requests=(\d+) errors=(\d+) status=(\d+) p50=(\d+) p90=(\d+) "
                  r"p99=(\d+)")


@dataclass
class Run:
    """One wrk run: requests, failures (socket errors + non-2xx), rate, latency in ms, and
    the CPU seconds each process took meanwhile."""

    requests: int
    failed: int
    rps: float
    p50: float
    p90: float
    p99: float
    cpu: dict[str, float]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"),
            "LADDER_HOME": os.environ.get("LADDER_HOME", tempfile.gettempdir())}


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers are children of its supervisor)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """VmRSS of the serving process(es): the workers when there are any, else `pid`."""
    pids = tree(pid)
    workers = pids[1:] or pids
    total = 0
    for p in workers:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


@contextmanager
def process(name: str, args: Sequence[str], ready_url: str, folder: Path
            ) -> Iterator[subprocess.Popen]:
    """A server subprocess, waited on until `ready_url` answers 200; stopped after."""
    log = (folder / f"{name}.log").open("ab")
    proc = subprocess.Popen(args, env=env(), cwd=folder, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"{' '.join(args)} exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{ready_url} not ready after 60 s; see {log.name}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc)
        log.close()


def prepare(folder: Path, upstream: str) -> tuple[Path, dict[float, Path]]:
    """The two policy files and the gateway's config, and the same with shadow runs at
    each of `SHADOW_RATES`, each on its own database (see the module docstring)."""
    from ladder.collect import collect
    from ladder.config import load_config
    from ladder.policies.persist import save_policy
    from ladder.policies.threshold import ThresholdCascade
    from ladder.rung import rungs_from_config
    from ladder.runlog import QueryTable, load_runlog
    from ladder.tasks import load_tasks

    tasks = folder / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"q{k}", "type": "short",
                                         "prompt": f"What is {k} + {k}?",
                                         "reference": f"n{2 * k}"}) + "\n"
                             for k in range(80)))
    prices = {"small": 1.0, "big": 10.0}
    fakes = [{"name": n, "backend": "fake", "skill": 0.5 if n == "small" else 0.95,
              "seed": k, "tasks": str(tasks), "price": {"input_per_mtok": p,
                                                        "output_per_mtok": p}}
             for k, (n, p) in enumerate(prices.items())]
    (folder / "collect.yaml").write_text(yaml.safe_dump({"models": fakes,
                                                         "task": {"type": "short"}}))
    collect(load_tasks(tasks), rungs_from_config(load_config(folder / "collect.yaml")),
            folder / "log.jsonl")
    table = QueryTable.from_runlog(load_runlog(folder / "log.jsonl"))
    policies = []
    for name, first in (("stop", -np.inf), ("climb", np.inf)):
        policy = ThresholdCascade(["small", "big"], 2000.0).fit(table)
        policy.thresholds_ = np.array([first, -np.inf])
        save_policy(policy, folder / f"{name}.json")
        policies.append({"name": name, "file": f"{name}.json"})
    models = [{"name": n, "backend": "openai", "base_url": upstream, "model": n,
               "endpoint": "chat", "price": {"input_per_mtok": p, "output_per_mtok": p}}
              for n, p in prices.items()]
    server = {"policies": policies, "database": "sqlite:///gateway.db", "max_concurrency": 1024}
    config = folder / "gateway.yaml"
    config.write_text(yaml.safe_dump({"models": models, "task": {"type": "short"},
                                      "server": server}))
    shadowing = {}
    for k, rate in enumerate(SHADOW_RATES):
        shadowing[rate] = folder / f"gateway-shadow-{k}.yaml"
        shadowing[rate].write_text(yaml.safe_dump({
            "models": models, "task": {"type": "short"},
            "server": {**server, "database": f"sqlite:///gateway-shadow-{k}.db",
                       "shadow": {"rate": rate, "reference": "big"}}}))
    return config, shadowing


def wrk(url: str, model: str, folder: Path, *, seconds: float, connections: int,
        delay_ms: float, watch: dict[str, int]) -> Run:
    """One wrk run (1 thread); `watch`: name → pid whose CPU time is measured meanwhile."""
    body = json.dumps({"model": model, "max_tokens": 16,
                       "messages": [{"role": "user", "content": PROMPT}]})
    script = folder / f"{model}-{delay_ms:g}.lua"
    script.write_text(LUA % {"body": body, "delay_ms": f"{delay_ms:g}"})
    before = {name: cpu_s(pid) for name, pid in watch.items()}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                                 "--latency", "-s", str(script), f"{url}/chat/completions"],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    cpu = {name: cpu_s(pid) - before[name] for name, pid in watch.items()}
    cpu["wrk"] = usage.ru_utime + usage.ru_stime
    cpu["wall"] = wall
    found = LINE.search(text)
    if proc.returncode != 0 or found is None:
        sys.exit(f"wrk failed ({proc.returncode}):\n{text}")
    requests, errors, bad, p50, p90, p99 = map(int, found.groups())
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    rps = float(rate.group(1)) if rate else requests / wall
    return Run(requests, errors + bad, rps, p50 / 1000, p90 / 1000, p99 / 1000, cpu)


def spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


@contextmanager
def upstream(folder: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with process("upstream", [sys.executable, "-m", "ladder.testing.fake_openai", "--port",
                              str(port)], f"{url}/models", folder) as proc:
        yield url, proc.pid


@contextmanager
def gateway(config: Path, workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    args = [sys.executable, "-c", "from ladder.cli import main; main()", "serve", "--config",
            str(config), "--port", str(port), "--workers", str(workers)]
    with process(f"{config.stem}-{workers}", args, f"http://127.0.0.1:{port}/readyz",
                 config.parent) as proc:
        yield f"http://127.0.0.1:{port}/v1", proc.pid


def latency(args: argparse.Namespace, up: str, gw: str, shadowing: dict[float, str],
            folder: Path) -> list[bool]:
    """Fixed-rate runs (the targets), and one connection back to back (the gateway's own
    path, warm), interleaved per repeat; added = gateway − direct within a repeat, and for
    a shadowing gateway its `stop` path − the control's (rate 0)."""
    paced = (args.latency_connections, args.latency_connections * 1000 / args.rate)
    cases = {"direct": (up, "small"), "pass-through": (gw, "small"),
             "cascade, stops at rung 1": (gw, "stop"), "cascade, climbs to rung 2": (gw, "climb"),
             **{shadowed(rate): (url, "stop") for rate, url in shadowing.items()}}
    modes: dict[tuple[int, float], dict[str, list[Run]]] = {
        mode: {name: [] for name in cases} for mode in (paced, (1, 0.0))}
    for url, model in cases.values():  # warm-up: connections, first-call imports, the store
        wrk(url, model, folder, seconds=min(2, args.duration),
            connections=args.latency_connections, delay_ms=0, watch={})
    for _ in range(args.repeats):
        for name, (url, model) in cases.items():
            for (connections, delay), runs in modes.items():
                seconds = args.duration if delay else max(1.0, args.duration / 2)
                runs[name].append(wrk(url, model, folder, seconds=seconds,
                                      connections=connections, delay_ms=delay, watch={}))
    print(f"\n### Latency at ~{args.rate:g} req/s ({paced[0]} connections paced by delay(), "
          f"{args.duration:g} s × {args.repeats}; median (min–max) of the repeats, ms)")
    verdicts = _latency_table(modes[paced])
    print("\n### One connection, back to back (no pauses: the path warm in cache)")
    _latency_table(modes[(1, 0.0)])
    print("\n(climbs: added = its latency − 2 × direct, the two upstream calls it makes)\n")
    oks = [_shadow_verdict(modes, paced, args.rate)]
    for name, a50, a99 in verdicts:
        if name in {shadowed(r) for r in SHADOW_RATES}:
            continue
        ok = a50 <= TARGETS["added_p50_ms"] and a99 <= TARGETS["added_p99_ms"]
        oks.append(ok)
        print(f"- {name} at ~{args.rate:g} req/s: added {a50:.3f} ms p50 (≤ 1), {a99:.3f} ms "
              f"p99 (≤ 5): {met(ok)}")
    return oks


def _shadow_verdict(modes: dict[tuple[int, float], dict[str, list[Run]]],
                    paced: tuple[int, float], rate: float) -> bool:
    """What shadow runs add: each shadowing gateway's `stop` path − the control's (rate 0),
    per repeat (median over repeats), paced and back to back; whether the paced p50 at the
    default rate is within the target."""
    added = {}
    for shadow_rate in SHADOW_RATES[1:]:
        for mode, runs in modes.items():
            pairs = list(zip(runs[shadowed(shadow_rate)], runs[shadowed(0.0)], strict=True))
            added[shadow_rate, mode] = (statistics.median(s.p50 - p.p50 for s, p in pairs),
                                        statistics.median(s.p99 - p.p99 for s, p in pairs))
            where = f"at ~{rate:g} req/s" if mode == paced else "back to back"
            p50, p99 = added[shadow_rate, mode]
            print(f"- shadow runs at rate {shadow_rate:g}, {where}: {p50:+.3f} ms p50, "
                  f"{p99:+.3f} ms p99 against the control (rate 0)")
    default = SHADOW_RATES[1]
    ok = added[default, paced][0] <= TARGETS["shadow_p50_ms"]
    print(f"- shadow runs at rate {default:g} add ≤ 0.2 ms p50 at ~{rate:g} req/s: {met(ok)}")
    return ok


def shadow_work(rate: float, gw: str) -> None:
    """What a shadowing gateway's shadow runs did, from its /metrics."""
    families = {}
    for line in httpx.get(gw.removesuffix("/v1") + "/metrics", timeout=10).text.splitlines():
        if line.startswith(("ladder_shadow_runs_total", "ladder_shadow_dropped_total",
                            "ladder_shadow_labels_total")):
            name, value = line.rsplit(" ", 1)
            families[name] = float(value)
    print(f"- gateway shadowing at rate {rate:g}: "
          + (", ".join(f"{k} {v:.0f}" for k, v in families.items()) or "no shadow runs"))


def check_paths(gw: str) -> None:
    """Exit unless `stop` runs one rung and `climb` two, as the tables claim."""
    for model, want in (("stop", ["small:stop"]), ("climb", ["small:escalate", "big:stop"])):
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
        got = httpx.post(f"{gw}/chat/completions", json=body, timeout=10).json()
        stages = [f"{s['model']}:{s['decision']}" for s in got["ladder"]["stages"]]
        if stages != want:
            sys.exit(f"policy {model!r} ran {stages}, not {want}")
        print(f"- `{model}` runs {' → '.join(stages)}")


def _latency_table(runs: dict[str, list[Run]]) -> list[tuple[str, float, float]]:
    """Print one latency table; the median added p50 and p99 of each gateway path."""
    print("\n| path | req/s | p50 | p90 | p99 | added p50 | added p99 | failed |")
    print("|---|---|---|---|---|---|---|---|")
    direct, verdicts = runs["direct"], []
    for name, rs in runs.items():
        base = 2 if "climbs" in name else 1
        add50 = [r.p50 - base * d.p50 for r, d in zip(rs, direct, strict=True)]
        add99 = [r.p99 - base * d.p99 for r, d in zip(rs, direct, strict=True)]
        added = "— | —" if name == "direct" else f"{spread(add50)} | {spread(add99)}"
        print(f"| {name} | {statistics.median(r.rps for r in rs):.0f} | "
              f"{spread([r.p50 for r in rs])} | {spread([r.p90 for r in rs])} | "
              f"{spread([r.p99 for r in rs])} | {added} | {sum(r.failed for r in rs)} |")
        if name != "direct":
            verdicts.append((name, statistics.median(add50), statistics.median(add99)))
    return verdicts


def throughput(args: argparse.Namespace, config: Path, up: str, up_pid: int,
               folder: Path) -> bool:
    """Concurrency-`args.concurrency` runs against the upstream alone, then the gateway with
    1 and `args.workers` workers; the CPU each process took, in cores (CPU s / wall s)."""
    rows = []
    for workers in sorted({1, args.workers}):
        with gateway(config, workers) as (gw, gw_pid):
            for model in ("small", "stop"):
                wrk(gw, model, folder, seconds=1, connections=args.concurrency, delay_ms=0,
                    watch={})  # warm the connections, the JIT-less caches, the store
                run = wrk(gw, model, folder, seconds=args.throughput_s,
                          connections=args.concurrency, delay_ms=0,
                          watch={"gateway": gw_pid, "upstream": up_pid})
                rows.append((f"gateway {'pass-through' if model == 'small' else 'stops'}",
                             workers, run))
    rows.insert(0, ("upstream alone", 0, wrk(up, "small", folder, seconds=args.throughput_s,
                                             connections=args.concurrency, delay_ms=0,
                                             watch={"upstream": up_pid})))
    print(f"\n### Throughput at concurrency {args.concurrency} ({args.throughput_s:g} s each)\n")
    print("| target | workers | req/s | p50 ms | p99 ms | failed | CPU cores: gateway | "
          "upstream | wrk |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, workers, run in rows:
        wall = run.cpu["wall"]
        cores = [f"{run.cpu[k] / wall:.2f}" if k in run.cpu else "—"
                 for k in ("gateway", "upstream", "wrk")]
        print(f"| {name} | {workers or '—'} | {run.rps:.0f} | {run.p50:.2f} | {run.p99:.2f} | "
              f"{run.failed} | {' | '.join(cores)} |")
    best = next(r.rps for n, w, r in rows if w == args.workers and "pass" in n)
    one = next(r.rps for n, w, r in rows if w == 1 and "pass" in n)
    print(f"\n- {args.workers} workers / 1 worker, pass-through: {best / one:.2f}×")
    ok = best >= TARGETS["rps"]
    print(f"- ≥ 1,500 req/s at concurrency {args.concurrency}, --workers {args.workers}, "
          f"pass-through: {best:.0f}: {met(ok)}")
    return ok


def memory(args: argparse.Namespace, gw: str, gw_pid: int, folder: Path) -> bool:
    """RSS after `args.warmup` requests to the stopping cascade and after `args.requests`
    more (runs at concurrency 64 until the count is reached)."""
    def serve(count: int) -> int:
        served, rate = 0, 500.0
        while served < count:
            seconds = (count - served) / rate * 1.02
            run = wrk(gw, "stop", folder, seconds=seconds,
                      connections=args.concurrency, delay_ms=0, watch={})
            served += run.requests
            rate = max(run.rps, 50.0)
        return served

    warm = serve(args.warmup)
    before = rss_mib(gw_pid)
    served = serve(args.requests)
    after = rss_mib(gw_pid)
    growth = after / before - 1
    print("\n### Memory (cascade that stops, one worker)\n")
    print("| after | requests | VmRSS MiB |\n|---|---|---|")
    print(f"| warm-up | {warm:,} | {before:.1f} |\n| then | {served:,} more | {after:.1f} |")
    ok = growth <= TARGETS["rss_growth"]
    print(f"\n- RSS growth over {served:,} requests after warm-up: {100 * growth:+.1f}% "
          f"(≤ 10%): {met(ok)}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="req/s for the latency runs")
    parser.add_argument("--latency-connections", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="s per latency run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--throughput-s", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["latency", "throughput", "memory"])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats, args.throughput_s = 1, 1, 1
        args.warmup, args.requests = 200, 500
    print(machine())
    print(f"commit {_commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="ladder-bench-") as tmp:
        folder = Path(tmp)
        with upstream(folder) as (up, up_pid):
            config, shadow_configs = prepare(folder, up)
            if not {"latency", "memory"} <= set(args.skip):
                with gateway(config, 1) as (gw, gw_pid):
                    check_paths(gw)
                    if "latency" not in args.skip:
                        with ExitStack() as stack:
                            shadowing = {rate: stack.enter_context(gateway(path, 1))[0]
                                         for rate, path in shadow_configs.items()}
                            verdicts += latency(args, up, gw, shadowing, folder)
                            for rate, url in shadowing.items():
                                shadow_work(rate, url)
                    if "memory" not in args.skip:
                        verdicts.append(memory(args, gw, gw_pid, folder))
            if "throughput" not in args.skip:
                verdicts.append(throughput(args, config, up, up_pid, folder))
    print(f"\nload average {os.getloadavg()[0]:.1f}; targets met: {sum(verdicts)}/{len(verdicts)}")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
