"""CPU a call costs the caller, per async HTTP client, against the fake upstream on loopback.

The gateway's largest part in the profile (`bench/profile_gateway.py`) is the upstream
client. This times the same chat-completion POST (the body `bench/gateway.py` sends) through
each installed client: httpx (what the `openai` backend uses), httpcore directly and aiohttp,
each with one pooled keep-alive session, on uvloop, one call at a time and 16 in flight.
CPU = this process's CPU time per call (the upstream runs in its own process); the clients
are interleaved round by round, so a burst of load elsewhere hits each alike.
Usage: PYTHONPATH=src .venv/bin/python bench/upstream_clients.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench
from _common import machine

BODY = json.dumps({"model": "small", "max_tokens": 16, "logprobs": True, "messages": [
    {"role": "user", "content": bench.PROMPT}]}).encode()
HEADERS = {"content-type": "application/json"}
Call = Callable[[], Awaitable[object]]


async def clients(url: str, stack: AsyncExitStack) -> dict[str, Call]:
    """One pooled session per installed client, each a call that POSTs and parses."""
    import httpcore
    import httpx

    found: dict[str, Call] = {}
    hx = await stack.enter_async_context(httpx.AsyncClient(limits=httpx.Limits(
        max_connections=64)))

    async def with_httpx() -> object:
        return (await hx.post(url, content=BODY, headers=HEADERS)).json()

    found[f"httpx {httpx.__version__}"] = with_httpx
    pool = await stack.enter_async_context(httpcore.AsyncConnectionPool(max_connections=64))

    async def with_httpcore() -> object:
        response = await pool.request("POST", url, content=BODY, headers=HEADERS)
        return json.loads(response.content)

    found[f"httpcore {httpcore.__version__}"] = with_httpcore
    if importlib.util.find_spec("aiohttp") is not None:
        import aiohttp

        session = await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64)))

        async def with_aiohttp() -> object:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                return json.loads(await response.read())

        found[f"aiohttp {aiohttp.__version__}"] = with_aiohttp
    return found


async def timed(call: Call, calls: int, in_flight: int) -> float:
    """µs of this process's CPU per call, `calls` calls with `in_flight` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await call()

    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - start) / calls * 1e6


async def measure(url: str, calls: int, rounds: int) -> dict[tuple[str, int], list[float]]:
    async with AsyncExitStack() as stack:
        found = await clients(url, stack)
        for call in found.values():  # warm: connections, first-call imports
            for _ in range(200):
                await call()
        out: dict[tuple[str, int], list[float]] = {}
        for _ in range(rounds):
            for name, call in found.items():
                for in_flight in (1, 16):
                    out.setdefault((name, in_flight), []).append(
                        await timed(call, calls, in_flight))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    print(machine())
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.calls} calls × "
          f"{args.rounds} rounds per client; event loop: {'uvloop' if uvloop else 'asyncio'}")
    with tempfile.TemporaryDirectory(prefix="ladder-clients-") as tmp, \
            bench.upstream(Path(tmp)) as (up, _):
        run = measure(f"{up}/chat/completions", args.calls, args.rounds)
        out = uvloop.run(run) if uvloop else asyncio.run(run)
    print("\n| client | CPU µs a call, 1 in flight | 16 in flight |\n|---|---|---|")
    for name in dict.fromkeys(n for n, _ in out):
        cells = [bench.spread(out[name, k]) for k in (1, 16)]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    print("\n(median (min–max) of the rounds)")
    best = min(dict.fromkeys(n for n, _ in out), key=lambda n: statistics.median(out[n, 1]))
    print(f"least CPU a call, 1 in flight: {best}")


if __name__ == "__main__":
    main()
