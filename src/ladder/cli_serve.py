"""`ladder serve`: the OpenAI-compatible gateway on uvicorn (uvloop and httptools when
installed, as `uvicorn[standard]` installs them)."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ladder.cli_common import console, fail, split_names


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
                                                 "URLs, comma-separated, cheap model first "
                                                 "(python -m ladder.server.upstream starts "
                                                 "llama.cpp's).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
) -> None:
    """Serve fitted policies behind an OpenAI-compatible API (/v1/chat/completions, ...)."""
    try:
        import uvicorn

        from ladder.config import ConfigError, load_config
        from ladder.server.app import (
            CONFIG_ENV,
            UPSTREAM_ENV,
            app_factory,
            create_app,
            freeze_heap,
            quiet_client_logs,
        )
        from ladder.server.store import StoreError
    except ImportError as error:
        raise fail(f"ladder serve needs the server extra: pip install 'ladder[server]' "
                   f"({error.name} is missing)") from None
    quiet_client_logs()
    try:
        if config is not None and upstream is not None:
            raise ConfigError("give --config or --upstream, not both (a config names its "
                              "models' servers itself)")
        if config is not None:
            loaded = load_config(config)
        else:
            from ladder.server.default import default_config

            loaded = default_config(upstream=split_names(upstream) if upstream else None)
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
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                              tempfile.mkdtemp(prefix="ladder-metrics-"))
        uvicorn.run(f"{app_factory.__module__}:{app_factory.__name__}", factory=True,
                    host=host, port=port, workers=workers, access_log=access_log,
                    log_level="info", timeout_graceful_shutdown=10)
    except (ConfigError, StoreError) as error:
        raise fail(str(error)) from None
