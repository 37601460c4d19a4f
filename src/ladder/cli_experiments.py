"""`ladder experiments`: every seed figure and table regenerated from real logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ladder.cli_common import console, fail, progress_bar, split_names


def experiments_command(
    experiments: Annotated[str, typer.Option(
        help="Comma-separated: tradeoff, statistical, regret, learning, envelope, router, "
        "profile, monotonicity, judge, or all.")] = "all",
    data: Annotated[Path | None, typer.Option(
        help="Folder of logs (each subfolder in a layout ladder reads; default "
        "../shared/data when present).")] = None,
    out: Annotated[Path, typer.Option(
        help="Folder for figures (PNG), tables (Markdown, LaTeX) and summary.json; results "
        "of experiments not rerun are kept.")] = Path("results"),
    page: Annotated[Path | None, typer.Option(
        help="The results page to regenerate (default OUT/results.md).")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (joblib).")] = 2,
) -> None:
    """Regenerate the experiments' figures, tables and results page from real logs."""
    from ladder.experiments.base import NAMES
    from ladder.experiments.data import default_data
    from ladder.experiments.runner import NothingToRun, run

    chosen = list(NAMES) if experiments.strip() == "all" else split_names(experiments) or []
    unknown = [n for n in chosen if n not in NAMES]
    if unknown or not chosen:
        raise fail(f"unknown experiment(s) {', '.join(unknown) or '(none given)'}; choose "
                   f"from {', '.join(NAMES)} or all")
    root = data if data is not None else default_data()
    if root is None:
        raise fail("no data folder: ../shared/data is not here; pass --data DIR, a folder "
                   "holding logs such as zellinger-cascades, mot-cascade-date or "
                   "routellm-gpt4-mixtral")
    if not root.is_dir():
        raise fail(f"--data {root}: no such folder")
    if jobs < 1:
        raise fail("--jobs must be at least 1")
    page = page if page is not None else out / "results.md"
    console.print(f"data: {root}; experiments: {', '.join(chosen)}; writing {out}/ and {page}")
    try:
        with progress_bar() as bar:
            task = bar.add_task("experiments", total=None)

            def advance(label: str, total: int) -> None:
                bar.update(task, advance=1, total=total, description=f"done: {label}")

            summary = run(chosen, root, out, page, n_jobs=jobs, progress=advance)
    except NothingToRun as error:
        raise fail(str(error)) from None
    errors = {f"{name} {unit}": message for name, entry in summary["experiments"].items()
              if name in chosen for unit, message in entry.get("errors", {}).items()}
    for label, message in errors.items():
        console.print(f"[red]failed:[/red] {label}: {message}")
    console.print(f"wrote {page} and {out / 'summary.json'} in "
                  f"{summary['last_run']['seconds']:.0f} s")
    if errors:
        raise typer.Exit(code=1)
