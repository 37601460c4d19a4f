"""`ladder logs`: the gateway's request log, exported as a run log to fit policies on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ladder.cli_common import console, fail

logs_app = typer.Typer(help="The gateway's request log (its database).", no_args_is_help=True)


@logs_app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Run log to write "
                                         "(.jsonl, .jsonl.gz, .csv or .parquet).")],
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the gateway's "
                                                 "database, e.g. sqlite:///ladder.db.")]
    = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="The gateway's YAML "
                                                "config: its server.database.")] = None,
    policy: Annotated[str | None, typer.Option(help="Only requests served by this policy "
                                               "name (default: all).")] = None,
) -> None:
    """Export served requests as a run log: one row per stage that ran, labelled where
    feedback arrived (null quality elsewhere)."""
    from ladder.config import ConfigError, load_config
    from ladder.runlog import RunLogError
    from ladder.server.store import Store, StoreError

    if (database is None) == (config is None):
        raise fail("give the database: --database URL or --config ladder.yaml (one of them)")
    base_dir = None
    if config is not None:
        try:
            settings = load_config(config)
        except ConfigError as error:
            raise fail(str(error)) from None
        database, base_dir = settings.server.database, settings.base_dir
    try:
        with Store(database, base_dir, create=False) as store:
            written = store.export_runlog(output, policy)
    except (StoreError, RunLogError) as error:
        raise fail(str(error)) from None
    console.print(f"wrote {written:,} rows to {output}")
