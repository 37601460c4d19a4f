"""The `ladder` command line: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ladder.runlog import QueryTable, RunLogError, load_runlog, write_runlog
from ladder.runlog.converters import FORMATS, convert

app = typer.Typer(
    help="Climb a ladder of LLMs only as far as needed: fit and judge cascades on run logs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help=f"Input layout: {', '.join(FORMATS)}.")
]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise _fail(f"unknown format '{format}'; choose one of {', '.join(FORMATS)}")


@app.command("convert")
def convert_command(
    src: Annotated[Path, typer.Argument(help="File or folder in a public layout.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run log to write "
                                         "(.jsonl, .jsonl.gz, .csv or .parquet).")],
    format: FormatOption = "auto",
) -> None:
    """Convert a public logged-output layout to the run-log format."""
    _check_format(format)
    from ladder.runlog import validate_runlog

    try:
        df = validate_runlog(convert(src, format))
        write_runlog(df, output)
    except RunLogError as error:
        raise _fail(str(error)) from None
    console.print(
        f"wrote {len(df):,} rows ({df['query_id'].nunique():,} queries × "
        f"{df['model'].nunique()} models) to {output}"
    )


def _models_table(evaluation) -> Table:
    table = Table(title="Single models on the test split")
    for column in ("model", "cost", "quality"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for m in evaluation.models:
        table.add_row(m["name"], f"{m['cost']:.3g}", f"{m['quality']:.4f}")
    return table


def _summary_table(evaluation) -> Table:
    table = Table(title="Policy families (fit on train, reported on test)")
    columns = ("aiq", "cost_at_98", "cost_at_100", "cpt50", "cpt80", "apgr", "gap_closure_98")
    table.add_column("family")
    for column in columns:
        table.add_column(column, justify="right")
    for family, summary in evaluation.summary.items():
        cells = [("—" if summary[c] is None else f"{summary[c]:.3f}") for c in columns]
        table.add_row(family, *cells)
    return table


@app.command("evaluate")
def evaluate_command(
    log: Annotated[Path, typer.Argument(help="Run log, or a folder/file in a public layout.")],
    format: FormatOption = "auto",
    benchmark: Annotated[str | None, typer.Option(help="Only this benchmark of the log.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models, in ladder "
                                               "order (default: all, by mean cost).")] = None,
    train_frac: Annotated[float | None, typer.Option(help="Random train share (default: the "
                                                     "log's split column, else 0.5).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 0,
    predictor: Annotated[str, typer.Option(help="Quality predictor: logistic, mlp or gbt.")]
    = "logistic",
    max_stages: Annotated[int, typer.Option(help="Longest model subsequence searched.")] = 3,
    lambdas: Annotated[int, typer.Option(help="Number of λ values in the sweep.")] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")]
    = None,
    report: Annotated[Path | None, typer.Option(help="Write report.md and figures here.")]
    = None,
) -> None:
    """Fit every policy family over a λ sweep on the train split and judge it on test."""
    _check_format(format)
    from ladder.evaluate.experiment import evaluate, to_json
    from ladder.evaluate.split import split_table
    from ladder.predictors import KINDS

    if predictor not in KINDS:
        raise _fail(f"unknown predictor '{predictor}'; choose one of {', '.join(KINDS)}")
    if max_stages < 1 or lambdas < 1:
        raise _fail("--max-stages and --lambdas must be at least 1")
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        df = load_runlog(log, format)
        table = QueryTable.from_runlog(df, models=chosen, benchmark=benchmark)
        train, test, how = split_table(table, train_frac, seed)
    except RunLogError as error:
        raise _fail(str(error)) from None
    if table.dropped:
        console.print(f"[yellow]dropped {table.dropped} queries missing a model[/yellow]")
    console.print(f"{table.n} queries × {table.k} models; split: {how} "
                  f"({train.n} train / {test.n} test)")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("fitting", total=None)

        def advance(description: str, total: int) -> None:
            bar.update(task, total=total, advance=1, description=f"fitting {description}")

        evaluation = evaluate(train, test, split=how, n_lambdas=lambdas, max_stages=max_stages,
                              predictor=predictor, progress=advance)
    out = Console() if sys.stdout.isatty() else Console(width=140)
    out.print(_models_table(evaluation))
    out.print(_summary_table(evaluation))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(to_json(evaluation), indent=1))
        console.print(f"wrote {json_out}")
    if report is not None:
        from ladder.report import write_report

        title = f"ladder evaluate {log.name}" + (f" --benchmark {benchmark}" if benchmark else "")
        console.print(f"wrote {write_report(evaluation, report, title=title)}")


def main() -> None:
    app()
