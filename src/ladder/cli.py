"""The `ladder` command line: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ladder.cli_common import console, fail, progress_bar, split_names
from ladder.cli_experiments import experiments_command
from ladder.cli_label import label_command
from ladder.cli_logs import logs_app
from ladder.cli_serve import serve_command
from ladder.runlog import QueryTable, RunLogError, load_runlog, write_runlog
from ladder.runlog.converters import FORMATS, convert

app = typer.Typer(
    help="Climb a ladder of LLMs only as far as needed: collect run logs from real models, "
    "fit and judge cascades on them, and run a fitted cascade live.",
    no_args_is_help=True,
    add_completion=False,
)
MAX_LAMBDAS = 200  # evaluate's λ sweep: each value costs a fit of every family
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help=f"Input layout: {', '.join(FORMATS)}.")
]


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise fail(f"unknown format '{format}'; choose one of {', '.join(FORMATS)}")


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
        raise fail(str(error)) from None
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
                                               "order (default: all, by mean train cost).")]
    = None,
    train_frac: Annotated[float | None, typer.Option(help="Random train share (default: the "
                                                     "log's split column, else 0.5).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 0,
    predictor: Annotated[str, typer.Option(help="Quality predictor: logistic, mlp or gbt.")]
    = "logistic",
    max_stages: Annotated[int, typer.Option(help="Longest model subsequence searched.")] = 3,
    lambdas: Annotated[int, typer.Option(help=f"Number of λ values in the sweep (at most "
                                         f"{MAX_LAMBDAS}).")] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")]
    = None,
    report: Annotated[Path | None, typer.Option(help="Write report.md and figures here.")]
    = None,
    pool: Annotated[bool, typer.Option(help="Fit the quality predictors on every benchmark's "
                                       "training queries with partial pooling.")] = False,
    intervals: Annotated[bool, typer.Option(help="Bootstrap 90% intervals (1,000 resamples "
                                            "of the test queries).")] = True,
    stability: Annotated[int, typer.Option(help="Also refit every family on this many 80% "
                                           "subsamples of train (e.g. 10; each costs about "
                                           "one evaluation).")] = 0,
) -> None:
    """Fit every policy family over a λ sweep on the train split and judge it on test."""
    _check_format(format)
    from ladder.evaluate.experiment import evaluate, to_json
    from ladder.evaluate.split import pooled_training, split_table
    from ladder.policies.base import best_model
    from ladder.predictors import KINDS
    from ladder.prompt_features import FeatureError

    if predictor not in KINDS:
        raise fail(f"unknown predictor '{predictor}'; choose one of {', '.join(KINDS)}")
    if stability < 0:
        raise fail("--stability must be 0 (off) or a number of refits")
    if max_stages < 1 or lambdas < 1:
        raise fail("--max-stages and --lambdas must be at least 1")
    if lambdas > MAX_LAMBDAS:
        raise fail(f"--lambdas {lambdas}: at most {MAX_LAMBDAS} (every λ fits every family "
                    "once; the default 20 already traces the frontier)")
    chosen = split_names(models)
    try:
        df = load_runlog(log, format)
        table = QueryTable.from_runlog(df, models=chosen, benchmark=benchmark)
        train, test, how = split_table(table, train_frac, seed)
        pooled = (pooled_training(QueryTable.from_runlog(df, models=chosen), train, benchmark)
                  if pool else None)
    except RunLogError as error:
        raise fail(str(error)) from None
    if table.dropped:
        console.print(f"[yellow]dropped {table.dropped} queries missing a model[/yellow]")
    console.print(f"{table.n} queries × {table.k} models; split: {how} "
                  f"({train.n} train / {test.n} test)")
    if not test.mean_cost()[best_model(test.mean_quality(), test.mean_cost())] > 0:
        console.print("[yellow]the most accurate model costs 0 on test, so no cost is traded: "
                      "metrics that are shares of its cost (cost_at_*, CPT, APGR, gap closure) "
                      "are undefined, shown as —[/yellow]")
    with progress_bar() as bar:
        task = bar.add_task("fitting", total=None)

        def advance(description: str, total: int) -> None:
            bar.update(task, total=total, advance=1, description=f"fitting {description}")

        try:
            evaluation = evaluate(train, test, split=how, n_lambdas=lambdas,
                                  max_stages=max_stages, predictor=predictor, progress=advance,
                                  pool=pooled, n_resamples=1000 if intervals else 0,
                                  n_refits=stability)
        except (RunLogError, FeatureError) as error:
            raise fail(str(error)) from None
    for note in evaluation.notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
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


@app.command("collect")
def collect_command(
    tasks: Annotated[Path, typer.Argument(help="Task file (JSONL: id, prompt, type, options "
                                          "or reference), or 'builtin' for ladder's own set.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config naming the "
                                         "models.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run log to append to "
                                         "(.jsonl); rerunning skips finished rows.")],
    models: Annotated[str | None, typer.Option(help="Comma-separated subset of the "
                                               "config's models.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Calls in flight per model "
                                                    "(default: the config's).")] = None,
) -> None:
    """Run every configured model on a task file and append a run log (resumable)."""
    from ladder.backends.base import BackendError
    from ladder.collect import CollectError, collect
    from ladder.config import ConfigError, load_config
    from ladder.rung import rungs_from_config
    from ladder.tasks import TaskError, builtin_tasks, load_tasks

    try:
        items = builtin_tasks() if str(tasks) == "builtin" else load_tasks(tasks)
        settings = load_config(config)
        rungs = rungs_from_config(settings, split_names(models))
        with progress_bar() as bar:
            task = bar.add_task("collecting", total=None)

            def advance(model: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=f"collect {model}")

            summary = collect(items, rungs, output,
                              concurrency or settings.defaults.concurrency, advance)
    except (TaskError, ConfigError, CollectError, BackendError) as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; every finished row is in {output} — rerun the "
                      "same command to resume[/yellow]")
        raise typer.Exit(code=130) from None
    if summary.repaired_line:
        console.print("[yellow]dropped a half-written last line from an interrupted run"
                      "[/yellow]")
    console.print(f"wrote {summary.written} rows to {output} "
                  f"({summary.skipped} already there, skipped)")


@app.command("fit")
def fit_command(
    log: Annotated[Path, typer.Argument(help="Run log, or a folder/file in a public layout.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Policy file to write.")],
    policy: Annotated[str, typer.Option(help="auto (the best family on held-out train "
                                        "folds), threshold, dp, seed_heuristic, router, "
                                        "routed or moa.")] = "auto",
    lam: Annotated[float | None, typer.Option("--lambda", help="Price of one unit of cost "
                                              "in quality (λ ≥ 0; default 0).")] = None,
    target_quality: Annotated[float | None, typer.Option(help="Instead of λ: the cheapest "
                              "auto policy certified to reach this fraction of the best "
                              "model's quality (e.g. 0.98), or this accuracy with "
                              "--absolute.")] = None,
    absolute: Annotated[bool, typer.Option(help="--target-quality is an absolute "
                                           "accuracy.")] = False,
    budget: Annotated[float | None, typer.Option(help="Instead of λ: the most accurate auto "
                                                 "policy certified to cost at most this "
                                                 "per query on average.")] = None,
    delta: Annotated[float, typer.Option(help="Risk of a target or budget promise failing "
                                         "(δ).")] = 0.1,
    chain: Annotated[str | None, typer.Option(help="Comma-separated models to climb, in "
                                              "order (moa: layer 1, then the oracle; "
                                              "default: best chain on the log).")]
    = None,
    split: Annotated[str | None, typer.Option(help="Fit only on rows whose split column "
                                              "equals this; 'all' fits on every row "
                                              "(default: train when the log has train "
                                              "rows, else all).")] = None,
    format: FormatOption = "auto",
    benchmark: Annotated[str | None, typer.Option(help="Only this benchmark of the log.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models, in ladder "
                                               "order (default: all, by mean train cost).")]
    = None,
    max_stages: Annotated[int, typer.Option(help="Longest chain searched.")] = 3,
    predictor: Annotated[str, typer.Option(help="logistic, mlp or gbt.")] = "logistic",
    pool: Annotated[bool, typer.Option(help="Fit the quality predictors on every benchmark's "
                                       "training queries with partial pooling.")] = False,
) -> None:
    """Fit one cascade policy on a run log for a trade-off λ and save it for the runtime."""
    _check_format(format)
    from ladder.evaluate.split import pooled_training
    from ladder.fit import ALL_ROWS, fit_operating_point, fit_policy, training_rows
    from ladder.policies.persist import save_policy
    from ladder.policies.ppi import judge_labelled
    from ladder.runtime import policy_chain

    try:
        df = load_runlog(log, format)
        table = QueryTable.from_runlog(df, models=split_names(models), benchmark=benchmark)
        table, split = training_rows(table, split)
        console.print(f"fitting on {'every row' if split == ALL_ROWS else f'the {split} split'}"
                      f" ({table.n} queries)")
        operating = target_quality is not None or budget is not None
        if operating and (lam is not None or policy != "auto" or chain is not None):
            raise RunLogError("--target-quality and --budget choose λ for the auto policy: "
                              "give neither --lambda, --policy nor --chain with them")
        with progress_bar() as bar:
            bar.add_task(f"fitting {policy} on {table.n} queries", total=None)
            pooled = (pooled_training(QueryTable.from_runlog(df, models=split_names(models)), table,
                                      benchmark) if pool else None)
            point = None
            if operating:
                fitted, point = fit_operating_point(
                    table, target=target_quality, budget=budget, absolute=absolute,
                    delta=delta, max_stages=max_stages, predictor=predictor, pool=pooled)
                lam = getattr(fitted, "lam", 0.0)
            else:
                lam = 0.0 if lam is None else lam
                fitted = fit_policy(table, policy, lam, split_names(chain), max_stages, predictor,
                                    pooled)
    except (RunLogError, ValueError) as error:
        raise fail(str(error)) from None
    save_policy(fitted, output)
    if point is not None:
        console.print(f"promise: {point.promise}; on the training queries (held out) quality "
                      f"{point.quality:.4f}, mean cost {point.cost:.4g}")
        if point.mode == "quality" and judge_labelled(table):
            console.print(_judge_note(point.human_labels))
    detail = ""
    if hasattr(fitted, "thresholds_"):
        detail = "; thresholds " + ", ".join(f"{t:.3f}" for t in fitted.thresholds_)
    console.print(f"{policy} at λ = {lam:.4g} on {table.n} queries: {fitted.family}, chain "
                  f"{' → '.join(policy_chain(fitted))}{detail}; held-out J_λ on the training "
                  f"log {getattr(fitted, 'train_objective_', float('nan')):.4f}")
    console.print(f"wrote {output}")


def _judge_note(human_labels: int) -> str:
    """What a quality promise rests on when some labels are a judge's."""
    from ladder.policies.ppi import MIN_HUMAN

    if human_labels:
        return (f"labels: partly a judge's, corrected by prediction-powered tests on "
                f"{human_labels} queries a person labelled too (asymptotic)")
    return (f"[yellow]labels: partly a judge's, read as the truth: fewer than {MIN_HUMAN} "
            "queries carry a person's labels with the judge's beside them (judge_quality), "
            "so the promise is about the judge's view of quality[/yellow]")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Folder for the run log, policy and report "
                                      "(a rerun reuses its log).")] = Path("reports/demo"),
    lam: Annotated[float | None, typer.Option("--lambda", help="Trade-off λ (default: chosen "
                                              "on the train half, where auto's held-out "
                                              "outcome lies furthest above the two models' "
                                              "mixing line).")] = None,
    policy: Annotated[str, typer.Option(help="auto, threshold, dp, seed_heuristic, router "
                                        "or routed.")]
    = "auto",
    limit: Annotated[int | None, typer.Option(help="Use only this many built-in items.")]
    = None,
) -> None:
    """A real cascade of the two embedded models on ladder's built-in tasks, end to end."""
    from ladder.backends.base import BackendError
    from ladder.demo import MODELS, run_demo
    from ladder.fit import POLICIES

    if policy not in POLICIES or policy == "moa":
        raise fail(f"unknown policy '{policy}' for the demo; choose one of "
                    f"{', '.join(p for p in POLICIES if p != 'moa')} (its pyramid row is moa)")
    if limit is not None and limit < 20:
        raise fail("--limit must be at least 20 items (10 to fit on, 10 to test)")
    console.print(f"models: {', '.join(MODELS)} (in process, llama.cpp); run log: "
                  f"{out / 'runlog.jsonl'}")
    try:
        with progress_bar() as bar:
            task = bar.add_task("starting", total=None)

            def advance(stage: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=stage)

            result = run_demo(out, lam, policy, limit, advance)
    except BackendError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the run log keeps every finished row — rerun to "
                      "resume[/yellow]")
        raise typer.Exit(code=130) from None
    table = Table(title=f"Built-in tasks, test half ({result.n_test} items); policy fitted on "
                  f"{result.n_train} train items, λ = {result.lam:.4g}")
    table.add_column("")
    for column in ("accuracy", "90% interval", "mean cost ($)",
                   *(f"stopped at {m}" for m in MODELS)):
        table.add_column(column, justify="right")
    for row in result.rows:
        table.add_row(row.name, f"{row.accuracy:.3f}",
                      f"[{row.interval[0]:.3f}, {row.interval[1]:.3f}]", f"{row.cost:.2e}",
                      *(f"{row.stopped[m]:.0%}" for m in MODELS))
    out_console = Console() if sys.stdout.isatty() else Console(width=140)
    out_console.print(table)
    out_console.print(f"chain {' → '.join(result.chain)}; live decisions equal to the offline "
                      f"replay of the logged outputs: {result.matches_offline}/{result.n_test}")
    m = result.margin
    out_console.print(f"quality above the line between the two models (random mixing at the "
                      f"same cost): {m['point']:+.3f}, 90% interval [{m['low']:+.3f}, "
                      f"{m['high']:+.3f}]")
    out_console.print(f"models run with {result.build.describe()} (the figures vary by CPU "
                      "and build)")
    if result.set_aside:
        console.print(f"the earlier run log was made under another llama.cpp build or CPU: "
                      f"kept as {result.set_aside}, outputs collected afresh")
    console.print(f"wrote {result.report}, {result.policy} and {result.log}")


app.command("label")(label_command)
app.command("experiments")(experiments_command)
app.command("serve")(serve_command)
app.add_typer(logs_app, name="logs")


def main() -> None:
    app()
