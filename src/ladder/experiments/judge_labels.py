"""The Zellinger logs relabelled by a judge, for the judge experiment: what each part of
it fits on, and what it measures against the true labels.

The judge is label-free: the top of the ladder, chosen without labels (the dearest model
by mean train cost), is the reference, and every other model's train answer is labelled
by `agreement` with the reference's answer (the reference's own cells get 1.0; where
agreement cannot tell, the cell stays unlabelled). The log is then what `ladder label`
would leave: `quality` the judge's label, `label_source` "reference", the judge's label
also in `judge_quality`; test rows keep their true labels, which only judge.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ladder.evaluate.intervals import Resamples, mean_interval, paired_mean_interval
from ladder.fit import choose_operating_point, operating_candidates
from ladder.judge.agreement import SHORT_WORDS, agreement, is_short
from ladder.judge.label import sampled_queries
from ladder.policies.base import best_model
from ladder.policies.ppi import HUMAN, REFERENCE
from ladder.runlog import validate_runlog
from ladder.runlog.table import QueryTable
from ladder.runtime import policy_chain

N_RESAMPLES = 1000  # bootstrap resamples of queries for the intervals
TARGET, DELTA = 0.98, 0.1  # the quality-target mode's promise (`ladder fit` defaults)
N_SUBSAMPLES, SUBSAMPLE = 10, 0.8  # train resamples of the target mode
# The target mode's sweep: 10 λ values and chains of up to 2 models (20 and 3 in `ladder
# fit`), so the 30 sweeps of three benchmarks fit the experiment's time budget.
TARGET_LAMBDAS, TARGET_STAGES = 10, 2
# Shares of the resampled train queries a person labels as well: 10% is the headline,
# fixed in advance (~24 queries, the few-labels regime of theory.md §9, ≤ 30 queries);
# 5% and 20% show how the correction's cost moves with the labelling effort.
HUMAN_SHARES, HUMAN_SHARE = (0.05, 0.1, 0.2), 0.1
ALONE = "PPI alone"  # the headline share tested by the prediction-powered p-value alone


def reference_model(train: QueryTable) -> str:
    """The top of the ladder chosen without labels: the dearest model on train."""
    return train.models[int(np.argmax(train.mean_cost()))]


def reference_labels(df: pd.DataFrame, reference: str) -> np.ndarray:
    """Per row of a log: agreement of its answer with the reference's answer to the same
    query (1.0 on the reference's own rows; NaN where agreement cannot tell)."""
    text = _answers(df)
    rows = zip(df["query_id"], df["model"], text, strict=True)
    answers = {query: answer for query, model, answer in rows if model == reference}
    labels = [1.0 if model == reference else agreement(answer, answers.get(query))
              for query, model, answer in zip(df["query_id"], df["model"], text, strict=True)]
    return np.array([np.nan if x is None else x for x in labels], dtype=float)


def relabel(df: pd.DataFrame, labels: np.ndarray, train: np.ndarray,
            judged: np.ndarray) -> pd.DataFrame:
    """The log with the judge's labels on the `judged` train rows (the other train rows
    unlabelled) and the test rows as they were (masks over the rows of `df`)."""
    out = df.copy()
    mine = train & judged
    out["quality"] = np.where(mine, labels, np.where(train, np.nan, df["quality"]))
    out["label_source"] = np.where(mine & ~np.isnan(labels), REFERENCE, None)
    out["judge_quality"] = np.where(mine, labels, np.nan)
    return validate_runlog(out)


def judged_split(df: pd.DataFrame, labels: np.ndarray, train: QueryTable, test: QueryTable,
                 share: float = 1.0, seed: int = 0) -> QueryTable:
    """The training table of `train`'s queries labelled by the judge on a seeded `share` of
    them (`ladder label --sample`), in `train`'s order; `test` is checked to be unchanged."""
    rows = df["query_id"].isin(set(train.query_ids)).to_numpy()
    seen = (set(map(str, train.query_ids)) if share >= 1
            else sampled_queries(train.query_ids, share, seed))
    judged = df["query_id"].astype(str).isin(seen).to_numpy()
    table = QueryTable.from_runlog(relabel(df, labels, rows, judged))
    where = {q: i for i, q in enumerate(table.query_ids)}
    out = table.rows(np.array([where[q] for q in train.query_ids])).select_models(train.models)
    again = table.rows(np.array([where[q] for q in test.query_ids])).select_models(test.models)
    if not np.array_equal(again.quality, test.quality, equal_nan=True):
        raise AssertionError("relabelling changed the test labels")
    return out


def label_errors(judged: QueryTable, true: QueryTable) -> dict:
    """How the judge's labels of the train cells differ from the true ones, each share
    with a 90% interval from resampling queries (the cells of a query move together):
    errors, false positives (judge 1, truth 0), false negatives, unlabelled cells; per
    model its error and mean label both ways."""
    view, truth = judged.judge_quality, true.quality
    known = ~np.isnan(view)
    wrong, up = known & (view != truth), known & (view > truth)
    resamples = Resamples.draw(true.n, N_RESAMPLES, 0)

    def share(hits: np.ndarray, of: np.ndarray) -> dict:
        return paired_mean_interval(resamples, hits.sum(axis=1), of.sum(axis=1), ratio=True)

    models = {}
    for m, name in enumerate(true.models):
        k = known[:, m]
        models[name] = {"error": share(wrong[:, [m]], known[:, [m]]),
                        "judged": float(view[k, m].mean()), "true": float(truth[k, m].mean())}
    return {"error": share(wrong, known), "false_positive": share(up, known),
            "false_negative": share(wrong & ~up, known),
            "unlabelled": mean_interval(resamples, (~known).mean(axis=1)), "models": models}


def long_answers(df: pd.DataFrame) -> float:
    """Share of the rows whose answer is too long for agreement to compare."""
    return float(np.mean([not is_short(a, SHORT_WORDS) for a in _answers(df)]))


def _answers(df: pd.DataFrame) -> list[str | None]:
    return [a if isinstance(a, str) else None for a in df["answer"]]


def with_human_labels(judged: QueryTable, true: QueryTable, rows: np.ndarray) -> QueryTable:
    """The judge-labelled table with a person's labels on `rows` (the judge's beside)."""
    source = judged.label_source.copy()
    source[rows] = HUMAN
    return replace(judged, quality=np.where(rows[:, None], true.quality, judged.quality),
                   label_source=source)


def target_runs(judged: QueryTable, true: QueryTable, test: QueryTable) -> list[dict]:
    """The quality-target mode on `N_SUBSAMPLES` seeded train resamples fitted on judge
    labels: per resample, the point certified reading the judge's labels as the truth
    ("judge"), with the prediction-powered correction for a person's labels on each
    `HUMAN_SHARES` share of the resample's queries (widening only, as `ladder fit` does),
    and at the headline share by the prediction-powered test alone (`ALONE`), each
    replayed on test (true labels)."""
    best = best_model(test.mean_quality(), test.mean_cost())
    goal, price = TARGET * float(test.mean_quality()[best]), float(test.mean_cost()[best])
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(N_SUBSAMPLES):
        keep = np.sort(rng.choice(true.n, round(SUBSAMPLE * true.n), replace=False))
        sub, truth = judged.rows(keep), true.rows(keep)
        candidates = operating_candidates(sub, n_lambdas=TARGET_LAMBDAS,
                                          max_stages=TARGET_STAGES, n_jobs=1)
        variants = {"judge": candidates}
        for share in HUMAN_SHARES:
            people = np.isin(sub.query_ids, list(sampled_queries(sub.query_ids, share, seed)))
            variants[f"{share:.0%}"] = candidates.audited(with_human_labels(sub, truth, people))
        headline = variants[f"{HUMAN_SHARE:.0%}"]
        variants[ALONE] = replace(headline, audit=replace(headline.audit, widen=False))
        run = {}
        for name, variant in variants.items():
            policy, point = choose_operating_point(variant, target=TARGET, delta=DELTA)
            outcome = policy.replay(test)
            run[name] = {"met": bool(outcome.mean_quality >= goal),
                         "margin": outcome.mean_quality - goal,
                         "quality": outcome.mean_quality,
                         "cost_share": outcome.mean_cost / price if price > 0 else None,
                         "fallback": point.fallback, "human_labels": point.human_labels,
                         "chain": list(policy_chain(policy)),
                         "train_quality": point.quality, "method": point.methods[0]}
        runs.append(run)
    return runs
