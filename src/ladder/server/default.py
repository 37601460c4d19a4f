"""What `ladder serve` serves with no config: the demo's two embedded models on free text.

Chat requests are free text, so the default policies are fitted on generated answers: the
built-in questions asked without their options (`ladder.tasks.free_text`), graded against
the correct option. Their run log ships with the package (`shipped_log()`); regenerate it
with

    python -m ladder.server.default collect

which runs both models on the 335 questions exactly as the runtime will (same template,
max_tokens and stop), resumable, into a working log under the data dir, then writes the
shipped file (only the needed columns, grades recomputed from the logged answers) and,
beside it, the llama.cpp build and CPU that made it (`ladder.backends.build`).

The shipped answers are those of one build on one CPU; another CPU or build answers a few
questions differently (docs/default-policy.md measures how many). The policies fitted on
them are statistical: they do not need the live answers to equal the logged ones.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from ladder.backends.build import llama_build, write_build
from ladder.collect import collect
from ladder.config import Config, ConfigError, config_from_dict
from ladder.demo import MODELS, demo_items, demo_lambda, embedded_models, line_margin
from ladder.fit import fit_policy
from ladder.paths import data_dir
from ladder.report import fmt, markdown_table
from ladder.rung import rungs_from_config
from ladder.runlog import QueryTable, load_runlog
from ladder.runlog.converters.answers import normalise_text
from ladder.runlog.io import read_runlog
from ladder.runtime import policy_chain
from ladder.tasks import Item, free_text, grade

# each model's prompt: of four candidates collected on the train split, the one it answered
# best there (docs/default-policy.md)
TEMPLATES = {"smollm2-135m": "Answer the question in a few words.\nQuestion: {prompt}\nAnswer:",
             "gemma3-270m": "Question: {prompt}\nAnswer:"}
MAX_TOKENS = 32
LOG_NAME = "builtin-free-text.jsonl.gz"
TRAIN_LOG_NAME = "builtin-free-text-train.jsonl.gz"  # its train rows: what the server fits on
# no `benchmark`: a chat request names no domain, so a policy must not learn to read one
COLUMNS = ("query_id", "model", "quality", "cost", "split", "prompt", "answer", "confidence",
           "logprob_mean", "logprob_min", "tokens_in", "tokens_out", "text")
POLICY = "auto"  # `ladder-balanced`'s family: auto picks the kind on held-out train folds
# λ of `ladder-balanced` and `ladder-online`, in quality per unit of cost: what
# `default_lambda` derives from the shipped log's train split (a test re-derives it)
LAMBDA = 11753.643629525139
# shadow runs on the embedded models: Gemma, the top rung, is the reference and the judge.
# A fifth of the requests rather than a paid deployment's 0.05: the models are in process
# and cost nothing, and a newcomer should see labels arrive within minutes
SHADOW = {"model": MODELS[-1], "reference": MODELS[-1], "rate": 0.2, "max_concurrency": 1}
ONLINE_REFIT_EVERY = 10  # labelled requests between refits: moves within a few hundred


def shipped_log(train_only: bool = False) -> Path:
    """The shipped run log, or its train rows (files inside the installed package)."""
    name = TRAIN_LOG_NAME if train_only else LOG_NAME
    return Path(str(resources.files("ladder.server") / "data" / name))


def free_text_items() -> list[Item]:
    """The built-in questions without options, in the demo's seeded train/test split; less
    any whose reference normalises to nothing ("@"), which no normalised answer can give."""
    return [free_text(item) for item in demo_items() if normalise_text(str(item.reference))]


def _models(templates: dict[str, str]) -> dict:
    models = [{**m, "template": templates[m["name"]]} for m in embedded_models()]
    return {"models": models, "task": {"type": "short", "max_tokens": MAX_TOKENS},
            "defaults": {"concurrency": 1}}  # in-process models take one call at a time


def models_config(templates: dict[str, str] | None = None) -> Config:
    """The two embedded models answering free text the way the default server asks them
    (or under other `templates`, by model name: how the templates were compared)."""
    return config_from_dict(_models(templates or TEMPLATES))


def upstream_models(models: dict, urls: Sequence[str]) -> dict:
    """The same models (names, prices, templates) served by OpenAI-compatible servers at
    `urls`, one per model in ladder order (`python -m ladder.server.upstream` starts them)."""
    if len(urls) != len(models["models"]):
        raise ConfigError(f"--upstream: give {len(models['models'])} comma-separated URLs, "
                          f"one per model ({', '.join(MODELS)}), got {len(urls)}")
    served = [{"name": m["name"], "backend": "openai", "base_url": url, "model": m["name"],
               "endpoint": "completions", "price": m["price"], "template": m["template"]}
              for m, url in zip(models["models"], urls, strict=True)]
    return {**models, "models": served, "defaults": {"concurrency": 4}}


def default_config(database: str | None = None,
                   upstream: Sequence[str] | None = None) -> Config:
    """What `ladder serve` serves with no config: both embedded models; `ladder-balanced`
    (the default, fitted at start on the shipped log's train rows) and `ladder-online`
    (warm-started from them, refitted every `ONLINE_REFIT_EVERY` labels), both at
    `LAMBDA`; shadow runs labelling `SHADOW['rate']` of the requests; the database (a
    SQLAlchemy URL) defaults to `ladder.db` in the per-user data dir, which this creates.
    `upstream`: the models' servers' base URLs (in process when None)."""
    models = _models(TEMPLATES)
    if upstream is not None:
        models = upstream_models(models, upstream)
    if database is None:
        data_dir().mkdir(parents=True, exist_ok=True)
        database = f"sqlite:///{(data_dir() / 'ladder.db').resolve()}"
    train = str(shipped_log(train_only=True))
    policies = [{"name": "ladder-balanced", "fit": {"policy": POLICY, "lambda": LAMBDA}},
                {"name": "ladder-online",
                 "online": {"chain": list(MODELS), "lambda": LAMBDA, "warm_start": train,
                            "refit_every": ONLINE_REFIT_EVERY}}]
    return config_from_dict({**models,
                             "server": {"log": train, "policies": policies,
                                        "default_policy": "ladder-balanced",
                                        "database": database, "shadow": SHADOW}},
                            source="the embedded default config")


def default_lambda(train: QueryTable | None = None) -> float:
    """λ for the default policies, from the train split only: the demo's rule (the multiple
    of the two models' mixing-line slope at which auto's held-out outcome lies furthest
    above that line)."""
    return float(demo_lambda(load_table("train") if train is None else train)[0])


def collect_log(work: Path | None = None, out: Path | None = None,
                config: Config | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Run both models on every free-text question, resuming `work`, then write `out`
    (default: the shipped logs) with grades recomputed by the current grading rule.

    The default working log is named by a hash of the models' config and, for models in
    process, of the llama.cpp build and CPU, so a changed template, price or build starts
    afresh instead of resuming outputs of the old one."""
    config = config or models_config()
    build = llama_build() if any(m.backend == "llamacpp" for m in config.models) else None
    if work is None:
        made_by = config.model_dump_json() + (build.describe() if build else "")
        key = hashlib.blake2b(made_by.encode(), digest_size=4).hexdigest()
        work = data_dir() / f"builtin-free-text-{key}.jsonl"
    items = free_text_items()
    collect(items, rungs_from_config(config), work, on_row=progress)
    out = pack_log(work, items, out or shipped_log())
    if build:
        write_build(out, build)
    return out


def pack_log(work: Path, items: list[Item], out: Path) -> Path:
    """The shipped log from a working one: its needed columns, regraded from the answers;
    its train rows go beside it (`TRAIN_LOG_NAME`, for the server to fit on)."""
    df = read_runlog(work)
    by_id = {item.id: item for item in items}
    df = df[df["query_id"].isin(by_id)].copy()
    df["quality"] = [grade(by_id[q], a if isinstance(a, str) else None)
                     for q, a in zip(df["query_id"], df["answer"], strict=True)]
    df["split"] = [by_id[q].meta["split"] for q in df["query_id"]]
    df = df[[c for c in COLUMNS if c in df.columns]].sort_values(["model", "query_id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(df, out)
    _write(df[df["split"] == "train"], out.with_name(TRAIN_LOG_NAME))
    return out


def _write(df: pd.DataFrame, path: Path) -> None:
    """JSON Lines, gzipped: floats as their exact repr (pandas' to_json rounds them to 15
    digits, and live signals must equal the logged ones), missing values left out, and no
    timestamp in the gzip header, so the same log gives the same bytes."""
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        for row in df.to_dict("records"):
            kept = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
            f.write((json.dumps(kept, ensure_ascii=False) + "\n").encode("utf-8"))


def load_table(split: str | None = None, log: Path | None = None) -> QueryTable:
    """The shipped log as a QueryTable over both models (one split of it, or all)."""
    df = load_runlog(log or shipped_log())
    table = QueryTable.from_runlog(df, models=list(MODELS))
    return table if split is None else table.rows(table.split == split)


@dataclass(frozen=True)
class HeldOut:
    """`ladder-balanced` fitted on the train split and replayed on the test split."""

    models: dict[str, tuple[float, float]]  # each model alone: (accuracy, mean cost)
    quality: float
    cost: float
    stage_mix: dict[str, float]  # share of test queries whose last rung was each model
    margin: dict  # quality above the models' mixing line at its cost, 90% interval
    chain: tuple[str, ...]
    family: str
    fit_s: float  # seconds fit_policy took on the train split
    n_train: int
    n_test: int


def held_out(log: Path | None = None) -> HeldOut:
    """Fit the default policy on the train split (timed) and replay it on the test split."""
    table = load_table(log=log)
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    start = time.perf_counter()
    policy = fit_policy(train, POLICY, LAMBDA)  # as the server fits `ladder-balanced`
    fit_s = time.perf_counter() - start
    outcome = policy.replay(test)
    models = {m: (float(test.quality[:, k].mean()), float(test.cost[:, k].mean()))
              for k, m in enumerate(test.models)}
    return HeldOut(models, outcome.mean_quality, outcome.mean_cost,
                   outcome.stage_mix(test.models),
                   line_margin(outcome.quality, outcome.cost, test.quality, test.cost),
                   policy_chain(policy), type(policy).__name__, fit_s, train.n, test.n)


def held_out_table(result: HeldOut) -> str:
    """The held-out comparison as markdown (docs/default-policy.md)."""
    rows = [[f"{m} alone", fmt(q, "quality"), fmt(c, "cost")]
            for m, (q, c) in result.models.items()]
    mix = ", ".join(f"{m} {share:.0%}" for m, share in result.stage_mix.items())
    rows.append([f"ladder-balanced ({result.family} {' → '.join(result.chain)}; "
                 f"last rung: {mix})",
                 fmt(result.quality, "quality"), fmt(result.cost, "cost")])
    margin = result.margin
    return "\n".join([
        markdown_table(["", "accuracy", "mean cost"], rows), "",
        f"Above random mixing of the two models at the same mean cost: "
        f"{margin['point']:+.3f}, 90% bootstrap interval [{margin['low']:+.3f}, "
        f"{margin['high']:+.3f}] over the {result.n_test} test questions "
        f"(fitted on {result.n_train} in {result.fit_s:.1f} s).",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ladder.server.default",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("collect", help="(re)generate the shipped free-text run log")
    run.add_argument("--work", type=Path, help="the resumable working log (.jsonl)")
    run.add_argument("--out", type=Path, help="where to write the log (default: shipped)")
    commands.add_parser("report", help="fit on the train split, print the test-split table")
    args = parser.parse_args(argv)
    if args.command == "report":
        print(held_out_table(held_out()))
        return
    start = time.perf_counter()
    path = collect_log(args.work, args.out,
                       progress=lambda m, done, total: print(f"{m} {done}/{total}", flush=True))
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
