"""What every `ladder` command shares: the stderr console, clear errors (exit 2, never a
traceback for a user mistake), comma-separated options and the progress bar."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")  # messages quote [extras], paths
    return typer.Exit(code=2)


def split_names(option: str | None) -> list[str] | None:
    """A comma-separated option as a list of names (None when not given)."""
    return [m.strip() for m in option.split(",") if m.strip()] if option else None


def progress_bar() -> Progress:
    """The progress bar every long command shows (on stderr, gone when done)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)
