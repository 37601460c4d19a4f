"""`ladder logs`: the gateway's request log, exported as a run log to fit policies on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ladder.cli_common import console, fail

if TYPE_CHECKING:
    from ladder.server.store import Store

DatabaseOption = Annotated[str | None, typer.Option(
    help="SQLAlchemy URL of the gateway's database, e.g. sqlite:///ladder.db.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="The gateway's YAML config: its server.database.")]
logs_app = typer.Typer(help="The gateway's request log (its database).", no_args_is_help=True)


@logs_app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Run log to write "
                                         "(.jsonl, .jsonl.gz, .csv or .parquet).")],
    database: DatabaseOption = None,
    config: ConfigOption = None,
    policy: Annotated[str | None, typer.Option(help="Only requests served by this policy "
                                               "name (default: all).")] = None,
) -> None:
    """Export served requests as a run log: one row per stage that ran, labelled where
    feedback arrived (null quality elsewhere)."""
    from ladder.runlog import RunLogError
    from ladder.server.store import StoreError

    try:
        with _open(database, config) as store:
            written = store.export_runlog(output, policy)
    except (StoreError, RunLogError) as error:
        raise fail(str(error)) from None
    console.print(f"wrote {written:,} rows to {output}")


@logs_app.command("spend")
def spend_command(
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """What each API key spent: requests, cost of the models' calls, the cost saved
    against the top rung, and what shadow runs spent labelling its requests (keys are
    shown by their digest prefix, never in full)."""
    from rich.table import Table

    from ladder.server.store import StoreError

    try:
        with _open(database, config) as store:
            spend = store.spend_by_key()
    except StoreError as error:
        raise fail(str(error)) from None
    table = Table("key", "requests", "cost", "saved", "shadow")
    for key, row in sorted(spend.items()):
        table.add_row(key, f"{int(row['requests']):,}", f"{row['cost']:.6g}",
                      f"{row['saved']:.6g}", f"{row['shadow']:.6g}")
    Console().print(table)


def _open(database: str | None, config: Path | None) -> Store:
    """The gateway's database, named directly or by its config (exactly one of them)."""
    from ladder.config import ConfigError, load_config
    from ladder.server.store import Store

    if (database is None) == (config is None):
        raise fail("give the database: --database URL or --config ladder.yaml (one of them)")
    base_dir = None
    if config is not None:
        try:
            settings = load_config(config)
        except ConfigError as error:
            raise fail(str(error)) from None
        database, base_dir = settings.server.database, settings.base_dir
    return Store(database, base_dir, create=False)
