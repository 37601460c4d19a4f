"""`ladder experiments`: every (experiment, unit) pair in one joblib pool, results merged
into OUT/summary.json (earlier runs' results of other experiments are kept) and the
results page re-rendered from it."""

from __future__ import annotations

import json
import platform
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from ladder.experiments.base import NAMES, experiment
from ladder.experiments.data import READ, DataDir
from ladder.experiments.page import render_page


class NothingToRun(ValueError):
    """None of the chosen experiments recognises a dataset in the data folder."""


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def _run_unit(name: str, unit: str, root: Path, cache: Path, out: Path) -> dict:
    """One unit in a worker: one BLAS thread (the pool already fills the cores)."""
    start = time.perf_counter()
    data = DataDir(root, cache=cache)
    folder = out / name
    if name != EVALUATION:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        with threadpool_limits(1):
            if name == EVALUATION:
                data.evaluation(unit)
                return {"name": name, "unit": unit, "seconds": time.perf_counter() - start}
            result = experiment(name).run(unit, data, folder)
        # round-trip now, so a non-JSON-able result fails in its own unit
        result = json.loads(json.dumps(result, default=_jsonable))
        return {"name": name, "unit": unit, "result": result,
                "seconds": time.perf_counter() - start}
    except Exception as error:  # one failed unit must not lose the others' results
        return {"name": name, "unit": unit, "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}


EVALUATION = "evaluation"  # the task name of a shared evaluation, run before its readers
EVALUATION_COST = 3.0  # relative to the experiments' `cost` figures


def units(names: Sequence[str], data: DataDir) -> list[tuple[str, str]]:
    """Every (experiment, unit) pair, in page order."""
    return [(name, unit) for name in names for unit in experiment(name).units(data)]


def plan(names: Sequence[str], data: DataDir) -> list[tuple[str, str]]:
    """The (experiment, unit) pairs to run, in the order the pool should start them."""
    return order(units(names, data))


def order(tasks: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The shared evaluations the units read, each paired with the longest independent unit
    so both workers stay busy, then every unit that reads an evaluation, longest first."""
    exps = {name: experiment(name) for name in dict.fromkeys(n for n, _ in tasks)}

    def longest_first(reads: bool) -> list[tuple[str, str]]:
        chosen = [t for t in tasks if bool(exps[t[0]].shared(t[1])) == reads]
        return sorted(chosen, key=lambda t: -exps[t[0]].cost(t[1]))

    free, readers = longest_first(False), longest_first(True)
    needed = dict.fromkeys(b for n, u in tasks for b in exps[n].shared(u))
    evaluations = [(EVALUATION, b) for b in needed]
    head: list[tuple[str, str]] = []
    while evaluations or free:
        for pending in (free, evaluations):
            if pending and (pending is evaluations or not evaluations
                            or exps[pending[0][0]].cost(pending[0][1]) >= EVALUATION_COST):
                head.append(pending.pop(0))
    return head + readers


def run(names: Sequence[str], root: Path, out: Path, page: Path, n_jobs: int = 2,
        progress: Callable[[str, int], None] | None = None) -> dict:
    """Run the chosen experiments on every dataset under `root` they recognise; write
    OUT/<experiment>/ files, OUT/summary.json and the page. progress(label, total) is
    called once per finished unit. Returns the summary."""
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(NAMES)} or all")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ladder-experiments-") as cache:
        data = DataDir(root, cache=Path(cache))
        natural = units(names, data)
        tasks = order(natural)
        if not tasks:
            raise NothingToRun(
                f"none of {', '.join(names)} recognises a dataset under {root} (it holds "
                f"{', '.join(sorted(data.found)) or 'no known log'}; the experiments read "
                f"logs in the layouts {', '.join(READ)})")
        jobs = Parallel(n_jobs=min(n_jobs, len(tasks)), return_as="generator_unordered")
        done = []
        for item in jobs(delayed(_run_unit)(n, u, data.root, data.cache, out)
                         for n, u in tasks):
            done.append(item)
            if progress:
                progress(f"{item['name']} {item['unit']}", len(tasks))
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    runs = summary.setdefault("experiments", {})
    for name in names:
        runs[name] = {"date": str(date.today()), "units": {}, "seconds": {}, "errors": {}}
    by_order = {task: i for i, task in enumerate(natural)}
    evaluations = {i["unit"]: round(i["seconds"], 1) for i in done if i["name"] == EVALUATION}
    for item in sorted((i for i in done if i["name"] != EVALUATION),
                       key=lambda i: by_order[(i["name"], i["unit"])]):
        entry = runs[item["name"]]
        entry["seconds"][item["unit"]] = round(item["seconds"], 1)
        if "error" in item:
            entry["errors"][item["unit"]] = item["error"]
            (out / item["name"] / f"{item['unit'].replace('/', '_')}.error.txt").write_text(
                item["traceback"])
        else:
            entry["units"][item["unit"]] = item["result"]
    summary.update(data=str(root), python=platform.python_version(),
                   datasets={kind: path.name for kind, path in data.found.items()},
                   last_run={"experiments": list(names), "jobs": n_jobs,
                             "shared_evaluation_seconds": evaluations,
                             "seconds": round(time.perf_counter() - start, 1),
                             "date": str(date.today())})
    if set(names) == set(NAMES):
        summary["full_run"] = summary["last_run"]
    summary_path.write_text(json.dumps(summary, indent=1, default=_jsonable))
    render_page(summary, out, page)
    return summary
