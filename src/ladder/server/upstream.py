"""Real model servers for the gateway to stand in front of: llama-cpp-python's
OpenAI-compatible server, one process per embedded model (one model per server, as vLLM
deployments run; llama-cpp-python's multi-model mode reloads weights on every switch).

    python -m ladder.server.upstream [--host 127.0.0.1] [--port 8081]

serves SmolLM2 on --port and Gemma on --port + 1 until interrupted, and prints the
`ladder serve --upstream ...` that points the embedded default's policies at them.
`ladder serve --upstream llamacpp` starts them itself, on free ports, for as long as it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

from ladder.demo import MODELS

PR_SET_PDEATHSIG = 1  # prctl(2)
# the server with the plain weight buffers ladder's own backend uses (see
# ladder.backends.llamacpp.use_plain_weight_buffers)
LAUNCH = ("from ladder.backends.llamacpp import use_plain_weight_buffers; "
          "use_plain_weight_buffers(); import runpy; "
          "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)")


def server_command(model: str, host: str, port: int, n_threads: int | None = None,
                   alias: str | None = None) -> list[str]:
    """The command that serves one embedded model under its own name (or `alias`)."""
    from ladder.backends.embedded import embedded_path

    return [sys.executable, "-c", LAUNCH, "--model", str(embedded_path(model)),
            "--model_alias", alias or model, "--host", host, "--port", str(port),
            "--n_ctx", "512",
            "--logits_all", "true", "--n_threads", str(n_threads or os.cpu_count() or 1)]


def wait_for_port(host: str, port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the model server on port {port} exited "
                                   f"(status {process.returncode})") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model server on port {port} did not start in "
                                   f"{timeout_s:.0f} s") from None
            time.sleep(0.3)


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the process that started it dies, even by
    SIGKILL, so a killed gateway never leaves model servers behind (Linux; elsewhere
    the `finally` below is all there is)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen, timeout_s: float = 15) -> None:
    """Terminate a child and reap it, killing it if it outlives `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct free ports (held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]


@contextlib.contextmanager
def embedded_servers(ports: Sequence[int], host: str = "127.0.0.1",
                     models: Sequence[str] = MODELS, timeout_s: float = 180,
                     quiet: bool = True) -> Iterator[list[str]]:
    """Serve each model on its port; yields their base URLs, in ladder order."""
    out = subprocess.DEVNULL if quiet else None
    processes = [subprocess.Popen(server_command(m, host, p), stdout=out, stderr=out,
                                  preexec_fn=_die_with_parent)
                 for m, p in zip(models, ports, strict=True)]
    try:
        for p, process in zip(ports, processes, strict=True):
            wait_for_port(host, p, process, timeout_s)
        yield [f"http://{host}:{p}/v1" for p in ports]
    finally:
        for process in processes:
            process.terminate()  # all at once, then reap each
        for process in processes:
            stop(process, timeout_s=30)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="SmolLM2's; Gemma's is +1")
    parser.add_argument("--ports", help="instead of --port: one port per model, "
                                        "comma-separated, cheap model first")
    args = parser.parse_args(argv)
    ports = ([int(p) for p in args.ports.split(",")] if args.ports
             else [args.port + k for k in range(len(MODELS))])
    if len(ports) != len(MODELS):
        parser.error(f"--ports: give {len(MODELS)} ports")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the cleanup on terminate
    try:
        with embedded_servers(ports, args.host, quiet=False) as urls:
            print(f"serving {', '.join(f'{m} at {u}' for m, u in zip(MODELS, urls, strict=True))}"
                  f"\nput the gateway in front: ladder serve --upstream {','.join(urls)}",
                  flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
