"""`ladder demo`: a real cascade of the two embedded models on the built-in tasks.

Collects (or reuses) a run log of both models on every item, fits a policy on the
train half, runs the live cascade with `decode` on the test half, and compares it
with each model alone, a Pyramid MoA and the oracle; the engine's evaluation draws the
frontier.

λ, unless given, is chosen on the train half: of a grid of multiples of the two models'
exchange rate there (quality gained per unit of cost going from SmolLM2 to Gemma, the
slope of the line that mixing them at random draws), the one at which `auto`'s held-out
training outcome lies furthest above that line. At λ = the slope, J_λ minus either
model's J_λ is exactly the height above the line, so the grid searches near it.

The Pyramid MoA row asks SmolLM2 under two prompt templates (layer 1; the second
template is logged on the train half only, to fit P_fail) and Gemma as the oracle.

The logged outputs are reused only under the llama.cpp build and CPU that made them
(`ladder.backends.build`): greedy decoding differs across instruction sets, and the live
cascade must meet the outputs it was fitted on. A log made under another build is set
aside (renamed, never deleted) and collected afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ladder.backends.build import LlamaBuild, llama_build, read_build, sidecar, write_build
from ladder.backends.embedded import EMBEDDED
from ladder.collect import collect
from ladder.config import Config, config_from_dict
from ladder.evaluate.experiment import evaluate
from ladder.evaluate.intervals import Resamples
from ladder.fit import fit_policy
from ladder.policies.auto import AutoCascade
from ladder.policies.base import single_model
from ladder.policies.baselines import Oracle
from ladder.policies.moa import PyramidMoA
from ladder.policies.persist import save_policy
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import router_cache
from ladder.policies.stages import PredictorCache
from ladder.report import fmt, markdown_table, write_report
from ladder.rung import rungs_from_config
from ladder.runlog import QueryTable, load_runlog
from ladder.runtime import Cascade, Result, policy_chain
from ladder.tasks import Item, builtin_tasks

MODELS = ("smollm2-135m", "gemma3-270m")
SECOND = "smollm2-135m-alt"  # SmolLM2 under a second template: Pyramid MoA's other member
SECOND_TEMPLATE = "Q: {prompt}\nThe correct answer is"
SLOPE_MULTIPLES = (0.25, 0.5, 1.0, 2.0)  # λ grid, in units of the train mixing line's slope


def embedded_models() -> list[dict]:
    """The two embedded models in process (config dicts), priced per input token in
    proportion to their size: the demo's and the default gateway's ladder."""
    return [{"name": m, "backend": "llamacpp", "model": m,
             "price": {"input_per_mtok": EMBEDDED[m].params_millions / 1000}}
            for m in MODELS]


def demo_config() -> Config:
    """Both embedded models, and SmolLM2 again under a second template."""
    models = embedded_models()
    models.append({**models[0], "name": SECOND, "template": SECOND_TEMPLATE})
    return config_from_dict({"models": models, "task": {"type": "choice"},
                             "defaults": {"concurrency": 1}})


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
    interval: tuple[float, float]  # the accuracy's 90% bootstrap interval over test items


def demo_row(name: str, quality: np.ndarray, cost: np.ndarray, last: list[str],
             n_resamples: int = 1000, seed: int = 0) -> DemoRow:
    """One row of the demo's table from per-item quality and cost, and which model each
    item ended on; the interval resamples the test items."""
    quality = np.asarray(quality, dtype=float)
    means = Resamples.draw(len(quality), n_resamples, seed).means(quality[:, None])[:, 0]
    low, high = np.percentile(means, [5, 95])
    return DemoRow(name, float(quality.mean()), float(np.mean(cost)), _stop_shares(last),
                   (float(low), float(high)))


@dataclass(frozen=True)
class DemoResult:
    rows: list[DemoRow]
    lam: float
    lam_note: str  # how λ was set
    chain: tuple[str, ...]
    n_train: int
    n_test: int
    matches_offline: int  # live decisions equal to the offline replay of the logged outputs
    build: LlamaBuild  # the llama.cpp build and CPU the outputs were made with
    set_aside: Path | None  # an earlier log of another build, renamed to keep it
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

    def tick(stage: str) -> Callable[[str, int, int], None]:
        return lambda model, done, total: progress and progress(f"{stage} {model}", done, total)

    build = llama_build()
    set_aside = reuse_only_under(log, build)
    rungs = rungs_from_config(config)
    collect(items, {m: rungs[m] for m in MODELS}, log, on_row=tick("collect"))
    train_items = [i for i in items if i.meta["split"] == "train"]
    collect(train_items, {SECOND: rungs[SECOND]}, log, on_row=tick("collect"))
    ids = {i.id for i in items}
    df = load_runlog(log)
    df = df[df["query_id"].isin(ids)]
    table = QueryTable.from_runlog(df, models=list(MODELS))
    train, test = table.rows(table.split == "train"), table.rows(table.split == "test")
    lam_note = "given"
    if lam is None:
        lam, multiple = demo_lambda(train)
        lam_note = (f"{multiple:g} × the train mixing line's slope, where auto's held-out "
                    "train outcome lies furthest above that line")
    fitted = fit_policy(train, policy, lam, max_stages=len(MODELS))
    policy_path = save_policy(fitted, out / "policy.json")
    test_items = [i for i in items if i.meta["split"] == "test"]
    results = _decode(config, fitted, test_items, "decode (live cascade)", progress)
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
    rows.append(_live_row(f"cascade ({policy}, live)", results))
    pyramid = PyramidMoA(lam, layer1=[MODELS[0], SECOND], oracle=MODELS[1]).fit(
        QueryTable.from_runlog(df[df["split"] == "train"], models=[MODELS[0], SECOND,
                                                                    MODELS[1]]))
    rows.append(_live_row("pyramid MoA (SmolLM2 × 2 templates → Gemma, live)",
                          _decode(config, pyramid, test_items, "decode (live pyramid)",
                                  progress)))
    oracle = Oracle(lam).fit(train).replay(test)
    rows.append(demo_row("oracle (knows every answer)", oracle.quality, oracle.cost,
                         [test.models[i] for i in oracle.last_run]))
    if progress:
        progress("frontier (every policy family over a λ sweep)", 0, 1)
    evaluation = evaluate(train, test, split="built-in split (alternate items)",
                          max_stages=len(MODELS))
    report = write_report(evaluation, out, title="ladder demo: embedded models, built-in tasks")
    result = DemoResult(rows, lam, lam_note, policy_chain(fitted), train.n, test.n,
                        int(matches), build, set_aside, margin, results, log, policy_path,
                        report)
    with report.open("a", encoding="utf-8") as f:
        f.write("\n" + live_section(result))
    return result


def reuse_only_under(log: Path, build: LlamaBuild) -> Path | None:
    """Keep `log` for resuming only if its outputs were made under `build`; otherwise rename
    it (and its record) aside and return the new name. Records `build` for what follows."""
    moved = None
    if log.exists() and read_build(log) != build:
        stamp = 1
        while (moved := log.with_name(f"{log.stem}.old{stamp}{log.suffix}")).exists():
            stamp += 1
        log.rename(moved)
        if sidecar(log).exists():
            sidecar(log).rename(sidecar(moved))
    write_build(log, build)
    return moved


def demo_lambda(train: QueryTable) -> tuple[float, float]:
    """(λ, its multiple of the slope): the grid point where auto's held-out outcome on the
    training queries lies furthest above the two models' mixing line (ties: the first)."""
    train = train.by_cost()
    quality, cost = train.mean_quality(), train.mean_cost()
    slope = max((quality[1] - quality[0]) / (cost[1] - cost[0]), 0.0)
    cache, routers = PredictorCache(train), router_cache(train)
    best = (-np.inf, 1.0)
    for multiple in SLOPE_MULTIPLES:
        lam = slope * multiple
        routed = None if routers is None else RoutedCascade(lam, len(MODELS)).fit(
            train, cache, routers)
        held = AutoCascade(lam, len(MODELS), route=False).fit(train, cache,
                                                              routed=routed).held_out_
        height = line_margin(held.quality, held.cost, train.quality, train.cost,
                             n_resamples=0)["point"]
        best = max(best, (height, multiple), key=lambda b: b[0])
    return slope * best[1], best[1]


def _decode(config: Config, policy: object, items: list[Item], stage: str,
            progress: Callable[[str, int, int], None] | None) -> list[Result]:
    with Cascade(rungs_from_config(config, list(policy_chain(policy))), policy, "choice",
                 concurrency=1) as cascade:
        results = []
        for k, item in enumerate(items):
            results.append(cascade.decode(item))
            if progress:
                progress(stage, k + 1, len(items))
    return results


def _live_row(name: str, results: list[Result]) -> DemoRow:
    """A live run's accuracy, mean cost and how far it went: Gemma where Gemma ran, else
    SmolLM2 (under either template)."""
    went = [MODELS[1] if any(t.model == MODELS[1] for t in r.trace) else MODELS[0]
            for r in results]
    return demo_row(name, np.array([r.quality for r in results]),
                    np.array([r.cost for r in results]), went)


def _heights(means: np.ndarray) -> np.ndarray:
    """Rows of mean (quality, cost, model qualities ×2, model costs ×2) → the quality above
    the line between the two models at that cost (flat past the dearer one)."""
    q, c, mq, mc = means[:, 0], means[:, 1], means[:, 2:4], means[:, 4:6]
    cheap = np.argmin(mc, axis=1)
    rows = np.arange(len(means))
    qa, ca, qb, cb = mq[rows, cheap], mc[rows, cheap], mq[rows, 1 - cheap], mc[rows, 1 - cheap]
    w = np.clip((c - ca) / np.where(cb > ca, cb - ca, np.inf), 0.0, 1.0)
    return q - (qa + w * (qb - qa))


def line_margin(quality: np.ndarray, cost: np.ndarray, model_quality: np.ndarray,
                model_cost: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> dict:
    """How much better (in quality) the live cascade is than mixing its two models at random
    at the same mean cost: the straight line between the models, flat past the dearer one.
    Per-item arrays; the 90% interval resamples the items (paired: same items for all;
    none when n_resamples is 0)."""
    values = np.column_stack([quality, cost, model_quality, model_cost])
    point = float(_heights(values.mean(axis=0)[None])[0])
    if not n_resamples:
        return {"point": point, "resamples": 0}
    resamples = Resamples.draw(len(quality), n_resamples, seed)
    low, high = np.percentile(_heights(resamples.means(values)), [5, 95])
    return {"point": point, "low": float(low), "high": float(high), "resamples": n_resamples}


def live_section(result: DemoResult) -> str:
    """The live cascade's table for report.md."""
    header = ["", "accuracy", "90% interval", "mean cost",
              *(f"stopped at {m}" for m in MODELS)]
    rows = [[r.name, fmt(r.accuracy, "quality"),
             f"[{fmt(r.interval[0], 'quality')}, {fmt(r.interval[1], 'quality')}]",
             fmt(r.cost, "cost"),
             *(fmt(r.stopped[m], "ratio") for m in MODELS)] for r in result.rows]
    return "\n".join([
        "## Live cascade (decode on the test half)", "",
        f"Models run with {result.build.describe()}: the figures below vary with the CPU "
        "and build (greedy decoding rounds differently across instruction sets).", "",
        f"Policy fitted on {result.n_train} train items at λ = {result.lam:.4g} "
        f"({result.lam_note}); "
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
    return demo_row(f"{model} alone", outcome.quality, outcome.cost, [model] * test.n)
