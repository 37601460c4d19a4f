"""The worked example's helpers (run.sh calls them): free ports, the replicas' config, and
waiting for servers to answer. Each subcommand prints what run.sh needs on stdout.

    configure.py ports N                      N free loopback ports, one a line
    configure.py fake DIR --small URL --big URL --database URL
                                              DIR/tasks.jsonl and DIR/ladder.yaml over two fakes
    configure.py real DIR --url URL --url URL --database URL
                                              DIR/ladder.yaml: the embedded default, its models
                                              behind OpenAI-compatible servers
    configure.py wait URL ...                 until every URL answers 200 (e.g. /readyz)
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ladder.server.upstream import free_ports
from ladder.testing import write_sum_tasks

N_TASKS = 60


def ports(n: int) -> None:
    print("\n".join(map(str, free_ports(n))))


def server_section(database: str, **policies: Any) -> dict[str, Any]:
    return {"database": database, "sync_s": 1.0, **policies}


def fake(folder: Path, small: str, big: str, database: str) -> None:
    """Short-answer questions the fake upstreams know, and a config whose two models are
    those upstreams: a threshold policy fitted on the log collected from them (`balanced`,
    the default) and an online learner warm-started on it (`learner`)."""
    write_sum_tasks(folder / "tasks.jsonl", N_TASKS)
    models = [
        {"name": "small", "backend": "openai", "base_url": small, "model": "small",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}},
        {"name": "big", "backend": "openai", "base_url": big, "model": "big",
         "price": {"input_per_mtok": 10.0, "output_per_mtok": 10.0}},
    ]
    policies = [
        {"name": "balanced", "fit": {"policy": "threshold", "lambda": 2000.0}},
        {"name": "learner", "online": {"chain": ["small", "big"], "lambda": 2000.0,
                                       "warm_start": "log.jsonl"}},
    ]
    config = {"models": models, "task": {"type": "short"},
              "server": server_section(database, log="log.jsonl", policies=policies)}
    (folder / "ladder.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def real(folder: Path, urls: list[str], database: str) -> None:
    """The embedded default's config with its models behind OpenAI-compatible servers (one
    URL per model, cheap first) and its database on PostgreSQL."""
    from ladder.server.default import default_config

    data = default_config(database, upstream=urls).model_dump(mode="json", by_alias=True,
                                                               exclude_none=True)
    data["server"].update(server_section(database))
    (folder / "ladder.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def wait(urls: list[str], timeout_s: float = 300) -> None:
    """Until each URL answers 200; exits 1 naming the first that never did."""
    deadline = time.monotonic() + timeout_s
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                sys.exit(f"{url} did not answer 200 within {timeout_s:g} s")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ports").add_argument("n", type=int)
    for name in ("fake", "real"):
        p = sub.add_parser(name)
        p.add_argument("folder", type=Path)
        p.add_argument("--database", required=True)
        if name == "fake":
            p.add_argument("--small", required=True)
            p.add_argument("--big", required=True)
        else:
            p.add_argument("--url", action="append", default=[], metavar="URL")
    p = sub.add_parser("wait")
    p.add_argument("urls", nargs="+")
    p.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.command == "ports":
        ports(args.n)
    elif args.command == "fake":
        fake(args.folder, args.small, args.big, args.database)
    elif args.command == "real":
        real(args.folder, args.url, args.database)
    else:
        wait(args.urls, args.timeout)


if __name__ == "__main__":
    main()
