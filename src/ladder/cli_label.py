"""`ladder label`: a run log's missing quality labels filled by a judge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from ladder.cli_common import console, fail, progress_bar


def label_command(
    log: Annotated[Path, typer.Argument(help="Run log whose null quality cells to fill.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Labelled run log to write "
                                         "(a journal beside it lets a rerun resume).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config naming "
                                                "the judge model (and its `judge:` "
                                                "settings: rubric, mode).")] = None,
    judge: Annotated[str | None, typer.Option(help="The configured model that judges "
                                              "(default: the config's judge.model).")] = None,
    reference: Annotated[str | None, typer.Option(help="The log's model whose answer is the "
                                                  "reference (usually the top rung).")] = None,
    mode: Annotated[str | None, typer.Option(help="auto (agreement where answers are short, "
                                             "else the judge model), agreement or model.")]
    = None,
    sample: Annotated[float, typer.Option(help="Judge only this share of the queries.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    calibrate: Annotated[bool, typer.Option(help="Also grade the cells that have a label "
                                            "(judge_quality beside it: what measures the "
                                            "judge's error).")] = True,
    concurrency: Annotated[int | None, typer.Option(help="Judge calls in flight (default: "
                                                    "the config's).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="Input layout.")] = "auto",
) -> None:
    """Fill a run log's null quality cells with a judge's labels (agreement with a
    reference rung's answer, or a judge model's yes/no); real labels are left alone."""
    from ladder.backends.base import BackendError
    from ladder.config import ConfigError, JudgeSpec, load_config
    from ladder.judge.grader import judge_from_spec
    from ladder.judge.label import label_runlog
    from ladder.rung import rungs_from_config
    from ladder.runlog import RunLogError, load_runlog

    if not 0 < sample <= 1:
        raise fail("--sample must lie in (0, 1]")
    try:
        settings = load_config(config) if config is not None else None
        base = (settings.judge if settings is not None and settings.judge is not None
                else None)
        given = {k: v for k, v in (("model", judge), ("reference", reference), ("mode", mode))
                 if v is not None}
        spec = JudgeSpec.model_validate({**(base.model_dump() if base else {}), **given})
        rungs = {}
        if spec.model is not None:
            if settings is None:
                raise ConfigError(f"--judge {spec.model}: name the config that defines it "
                                  "(--config)")
            rungs = rungs_from_config(settings, [spec.model])
        grader = judge_from_spec(spec, rungs)
        df = load_runlog(log, format)
        with progress_bar() as bar:
            task = bar.add_task("judging", total=None)
            summary = asyncio.run(label_runlog(
                df, grader, output, sample=sample, seed=seed, calibrate=calibrate,
                concurrency=concurrency or (settings.defaults.concurrency if settings else 4),
                progress=lambda done, total: bar.update(task, completed=done, total=total)))
    except (ConfigError, RunLogError, BackendError) as error:
        raise fail(str(error)) from None
    except ValueError as error:  # pydantic's, for a bad --mode or judge setting
        raise fail(f"judge settings: {error}") from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; the labels made so far are kept beside "
                      f"{output} — rerun the same command to resume[/yellow]")
        raise typer.Exit(code=130) from None
    filled = ", ".join(f"{n:,} by {s}" for s, n in sorted(summary.filled.items())) or "none"
    console.print(f"labelled {sum(summary.filled.values()):,} cells ({filled}); "
                  f"{summary.resumed:,} from an earlier run; {summary.kept:,} labels kept"
                  + (f", {summary.calibrated:,} of them judged too" if summary.calibrated else ""))
    if summary.unlabelled:
        why = ", ".join(f"{k} {n}" for k, n in sorted(summary.failures.items()))
        console.print(f"[yellow]{summary.unlabelled:,} cells left unlabelled"
                      f"{f' (judge failures: {why})' if why else ''}[/yellow]")
    if summary.judge_cost:
        console.print(f"judge cost {summary.judge_cost:.4g}")
    console.print(f"wrote {output}")
