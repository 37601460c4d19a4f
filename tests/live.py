"""`ladder serve` as a child process on a free loopback port: what the client and
durability tests drive over real HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

import ladder
from ladder.server.upstream import free_port, stop

SOURCE = str(Path(ladder.__file__).resolve().parents[1])  # this checkout's src/


@contextlib.contextmanager
def ladder_serve(config: Path | None, *options: str, home: Path | None = None,
                 timeout_s: float = 60.0, env: dict[str, str] | None = None,
                 ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `ladder serve [--config CONFIG] OPTIONS...`; yield its base URL once /readyz is
    200, and the process (stopped at the end unless the test killed it). Its $LADDER_HOME
    and log are `home` (default: the config's folder)."""
    home = home or config.parent
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")]),
           "LADDER_HOME": str(home), **(env or {})}
    out = (home / "serve.log").open("wb")
    named = [] if config is None else ["--config", str(config)]
    child = subprocess.Popen(
        [sys.executable, "-m", "ladder", "serve", *named, "--port", str(port), *options],
        env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert child.poll() is None, (home / "serve.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "ladder serve never became ready"
            time.sleep(0.1)
        yield url, child
    finally:
        stop(child)
        out.close()
