"""`ladder demo`: a real cascade of the two embedded models on the built-in tasks.

Collects (or reuses) a run log of both models on every item, fits a policy on the
train half, runs the live cascade with `decode` on the test half, and compares it
with each model alone and the oracle; the engine's evaluation draws the frontier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ladder.backends.embedded import EMBEDDED
from ladder.collect import collect
from ladder.config import Config, config_from_dict
from ladder.evaluate.experiment import evaluate
from ladder.evaluate.intervals import Resamples
from ladder.fit import fit_policy
from ladder.policies.base import single_model
from ladder.policies.baselines import Oracle
from ladder.policies.persist import save_policy
from ladder.report import fmt, markdown_table, write_report
from ladder.rung import rungs_from_config
from ladder.runlog import QueryTable, load_runlog
from ladder.runtime import Cascade, Result, policy_chain
from ladder.tasks import Item, builtin_tasks

MODELS = ("smollm2-135m", "gemma3-270m")
WORTH = 0.25  # default λ: one call of the largest model is worth this much accuracy


def demo_config() -> Config:
    """Both embedded models in process, priced per token in proportion to their size."""
    return config_from_dict({
        "models": [
            {"name": m, "backend": "llamacpp", "model": m,
             "price": {"input_per_mtok": EMBEDDED[m].params_millions / 1000}}
            for m in MODELS
        ],
        "task": {"type": "choice"},
        "defaults": {"concurrency": 1},
    })


def demo_items(limit: int | None = None, seed: int = 0) -> list[Item]:
    """The built-in items in a seeded order, alternately train and test."""
    items = builtin_tasks()
    order = np.random.default_rng(seed).permutation(len(items))
    chosen = [items[i] for i in order[: limit or len(items)]]
    return [replace(item, meta={**item.meta, "split": "train" if k % 2 == 0 else "test"})
            for k, item in enumerate(chosen)]


@dataclass(frozen=True)
class DemoRow:
    name: str
    accuracy: float
    cost: float
    stopped: dict[str, float]  # share of test items whose last model run was each model


@dataclass(frozen=True)
class DemoResult:
    rows: list[DemoRow]
    lam: float
    chain: tuple[str, ...]
    n_train: int
    n_test: int
    matches_offline: int  # live decisions equal to the offline replay of the logged outputs
    margin: dict  # the live cascade's quality above the two models' mixing line, 90% interval
    results: list[Result]
    log: Path
    policy: Path
    report: Path


def _stop_shares(last: list[str]) -> dict[str, float]:
    return {m: last.count(m) / len(last) for m in MODELS}


def run_demo(out: Path, lam: float | None = None, policy: str = "auto",
             limit: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> DemoResult:
    """Collect, fit on train, decode test live; `progress(stage, done, total)`."""
    out.mkdir(parents=True, exist_ok=True)
    items = demo_items(limit)
    config = demo_config()
    log = out / "runlog.jsonl"
    collect(items, rungs_from_config(config), log,
            on_row=lambda model, done, total: progress and progress(f"collect {model}", done,
                                                                    total))
    ids = {i.id for i in items}
    df = load_runlog(log)
    table = QueryTable.from_runlog(df[df["query_id"].isin(ids)], models=list(MODELS))
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    if lam is None:
        lam = WORTH / float(train.mean_cost()[-1])
    fitted = fit_policy(train, policy, lam, max_stages=len(MODELS))
    policy_path = save_policy(fitted, out / "policy.json")
    test_items = [i for i in items if i.meta["split"] == "test"]
    with Cascade(rungs_from_config(config), fitted, "choice", concurrency=1) as cascade:
        results = []
        for k, item in enumerate(test_items):
            results.append(cascade.decode(item))
            if progress:
                progress("decode (live cascade)", k + 1, len(test_items))
    offline = fitted.replay(test)
    position = {q: k for k, q in enumerate(test.query_ids)}
    matches = sum(
        test.models[offline.chosen[position[i.id]]] == r.model
        and test.models[offline.last_run[position[i.id]]] == r.trace[-1].model
        for i, r in zip(test_items, results, strict=True)
    )
    rows = [_single(test, m) for m in MODELS]
    live = np.array([[r.quality, r.cost] for r in results], dtype=float)
    order = [position[i.id] for i in test_items]
    margin = line_margin(live[:, 0], live[:, 1], test.quality[order], test.cost[order])
    rows.append(DemoRow(f"cascade ({policy}, live)",
                        float(np.mean([r.quality for r in results])),
                        float(np.mean([r.cost for r in results])),
                        _stop_shares([r.trace[-1].model for r in results])))
    oracle = Oracle(lam).fit(train).replay(test)
    rows.append(DemoRow("oracle (knows every answer)", oracle.mean_quality, oracle.mean_cost,
                        _stop_shares([test.models[i] for i in oracle.last_run])))
    if progress:
        progress("frontier (every policy family over a λ sweep)", 0, 1)
    evaluation = evaluate(train, test, split="built-in split (alternate items)",
                          max_stages=len(MODELS))
    report = write_report(evaluation, out, title="ladder demo: embedded models, built-in tasks")
    result = DemoResult(rows, lam, policy_chain(fitted), train.n, test.n, int(matches),
                        margin, results, log, policy_path, report)
    with report.open("a", encoding="utf-8") as f:
        f.write("\n" + live_section(result))
    return result


def line_margin(quality: np.ndarray, cost: np.ndarray, model_quality: np.ndarray,
                model_cost: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict:
    """How much better (in quality) the live cascade is than mixing its two models at random
    at the same mean cost: the straight line between the models, flat past the dearer one.
    Per-item arrays; the 90% interval resamples the items (paired: same items for all)."""
    resamples = Resamples.draw(len(quality), n_resamples, seed)

    def margins(means: np.ndarray) -> np.ndarray:
        q, c, mq, mc = means[:, 0], means[:, 1], means[:, 2:4], means[:, 4:6]
        cheap = np.argmin(mc, axis=1)
        rows = np.arange(len(means))
        qa, ca, qb, cb = mq[rows, cheap], mc[rows, cheap], mq[rows, 1 - cheap], mc[rows, 1 - cheap]
        w = np.clip((c - ca) / np.where(cb > ca, cb - ca, np.inf), 0.0, 1.0)
        return q - (qa + w * (qb - qa))

    values = np.column_stack([quality, cost, model_quality, model_cost])
    point = float(margins(values.mean(axis=0)[None])[0])
    low, high = np.percentile(margins(resamples.means(values)), [5, 95])
    return {"point": point, "low": float(low), "high": float(high), "resamples": n_resamples}


def live_section(result: DemoResult) -> str:
    """The live cascade's table for report.md."""
    header = ["", "accuracy", "mean cost", *(f"stopped at {m}" for m in MODELS)]
    rows = [[r.name, fmt(r.accuracy, "quality"), fmt(r.cost, "cost"),
             *(fmt(r.stopped[m], "ratio") for m in MODELS)] for r in result.rows]
    return "\n".join([
        "## Live cascade (decode on the test half)", "",
        f"Policy fitted on {result.n_train} train items at λ = {result.lam:.4g} "
        f"(one call of the largest model worth {WORTH} accuracy unless λ was given); "
        f"chain {' → '.join(result.chain)}; {result.n_test} test items decoded live.", "",
        markdown_table(header, rows), "",
        f"Live decisions equal to the offline replay of the logged outputs: "
        f"{result.matches_offline} / {result.n_test}.", "",
        f"Quality above the straight line between the two models (what mixing them at random "
        f"reaches at the same mean cost): {result.margin['point']:+.3f}, 90% bootstrap "
        f"interval [{result.margin['low']:+.3f}, {result.margin['high']:+.3f}] over the "
        f"{result.n_test} test items.", "",
    ])


def _single(test: QueryTable, model: str) -> DemoRow:
    outcome = single_model(test, test.index(model))
    return DemoRow(f"{model} alone", outcome.mean_quality, outcome.mean_cost,
                   _stop_shares([model] * test.n))
