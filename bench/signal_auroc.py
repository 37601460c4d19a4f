"""How well each rung's signals rank its own correctness, on the demo log's TRAIN half only.

For each model: AUROC of correctness from confidence alone (as it ranks, and through a
cross-validated logistic regression), from the option signals (margin, entropy and the
chosen option's mean token log-likelihood), from both, and from the policy's stage
features before and after margin/entropy joined them. Then the escalation question: do
SmolLM2's stage-0 features pick out the queries where Gemma is right and SmolLM2 wrong?
Every score is out of fold (5-fold `cross_val_predict`), repeated over fold seeds.
With `--second LOG` (the same models run with a second prompt template, models named
`<model>@t2`) it adds the two templates' answer agreement as a signal.
Usage: python bench/signal_auroc.py reports/demo/runlog.jsonl [--second t2.jsonl]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ladder.runlog import QueryTable, load_runlog
from ladder.signals import feature_names, stage_features

MODELS = ("smollm2-135m", "gemma3-270m")
SEEDS = range(10)


def oof_scores(X: np.ndarray, y: np.ndarray, C: float, seed: int) -> np.ndarray:
    """Out-of-fold P(y = 1) of a standardised logistic regression; constant or all-missing
    columns dropped, other gaps filled with the column mean (no column here has gaps)."""
    X = X[:, ~np.isnan(X).all(axis=0)]
    X = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    X = X[:, X.std(axis=0) > 0]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1]


def over_seeds(target: np.ndarray, scores: Callable[[int], np.ndarray]) -> str:
    """AUROC of `target` from out-of-fold scores, mean ± sd over the fold seeds."""
    aucs = [roc_auc_score(target, scores(seed)) for seed in SEEDS]
    return f"{np.mean(aucs):.3f} ± {np.std(aucs):.3f}"


def policy_features(table: QueryTable, j: int, new: bool) -> np.ndarray:
    """The stage-0 features of a one-model chain, with or without margin and entropy."""
    names = feature_names(table, [j], 0)
    X = stage_features(table, [j], 0)
    keep = [k for k, n in enumerate(names) if new or not n.endswith((":margin", ":entropy"))]
    return X[:, keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--second", help="run log of the same models with a second template")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength")
    args = parser.parse_args()
    df = load_runlog(args.log)
    table = QueryTable.from_runlog(df, models=list(MODELS))
    train = table.rows(table.split == "train")
    print(f"train half: {train.n} queries; accuracy "
          + ", ".join(f"{m} {train.quality[:, j].mean():.3f}" for j, m in enumerate(MODELS)))
    agree = None
    if args.second:
        second = load_runlog(args.second).set_index(["query_id", "model"])["answer"]
        answers = df.set_index(["query_id", "model"])["answer"]
        agree = np.column_stack([
            [float(answers[(q, m)] == second.get((q, f"{m}@t2"), np.nan))
             for q in train.query_ids] for m in MODELS
        ])
    sig = train.signals

    def col(name: str, j: int) -> np.ndarray:
        return sig[name][:, j]

    # single signals also ranked as they are, in the direction fixed in advance
    raw_sign = {"confidence": 1, "margin": 1, "entropy": -1,
                "logprob_mean (length-normalised LL)": 1}
    rows: list[tuple[str, Callable[[int], np.ndarray]]] = [
        ("confidence", lambda j: col("confidence", j)[:, None]),
        ("margin", lambda j: col("margin", j)[:, None]),
        ("entropy", lambda j: col("entropy", j)[:, None]),
        ("logprob_mean (length-normalised LL)", lambda j: col("logprob_mean", j)[:, None]),
        ("margin + entropy + logprob_mean",
         lambda j: np.column_stack([col(n, j) for n in ("margin", "entropy", "logprob_mean")])),
        ("confidence + the three", lambda j: np.column_stack(
            [col(n, j) for n in ("confidence", "margin", "entropy", "logprob_mean")])),
        ("policy stage features, before", lambda j: policy_features(train, j, new=False)),
        ("policy stage features, with margin/entropy",
         lambda j: policy_features(train, j, new=True)),
    ]
    if agree is not None:
        rows += [
            ("template agreement alone", lambda j: agree[:, j][:, None]),
            ("policy features + agreement",
             lambda j: np.column_stack([policy_features(train, j, new=True), agree[:, j]])),
        ]
    print(f"\nAUROC of each model's correctness, train half, 5-fold CV logistic "
          f"(C={args.C}), mean ± sd over {len(SEEDS)} fold seeds")
    print("| signals | " + " | ".join(f"{m} raw | {m} CV" for m in MODELS) + " |\n|---|"
          + "---|---|" * len(MODELS))
    for name, features in rows:
        cells = []
        for j in range(len(MODELS)):
            y = train.quality[:, j]
            X = features(j)
            sign = raw_sign.get(name)
            cells += ["" if sign is None else f"{roc_auc_score(y, sign * X[:, 0]):.3f}",
                      over_seeds(y, lambda seed, X=X, y=y: oof_scores(X, y, args.C, seed))]
        print(f"| {name} | " + " | ".join(cells) + " |")

    helps = (train.quality[:, 1] > train.quality[:, 0]).astype(int)
    hurts = (train.quality[:, 1] < train.quality[:, 0]).astype(int)
    print(f"\nEscalation: Gemma right & SmolLM2 wrong on {helps.sum()} / {train.n} "
          f"(SmolLM2 right & Gemma wrong on {hurts.sum()})")
    print("AUROC for 'escalating helps' from SmolLM2's stage-0 view: 1 − P(SmolLM2 right) "
          "(the cascade's view) and P(helps) fitted directly; mean ± sd over fold seeds")
    print("| signals | 1 − P(SmolLM2 right) | P(escalating helps) |\n|---|---|---|")
    print(f"| 1 − confidence, no fit | {roc_auc_score(helps, -col('confidence', 0)):.3f} | |")
    right = train.quality[:, 0]
    for name, features in rows:
        X = features(0)
        print(f"| {name} | "
              f"{over_seeds(helps, lambda seed, X=X: 1 - oof_scores(X, right, args.C, seed))} | "
              f"{over_seeds(helps, lambda seed, X=X: oof_scores(X, helps, args.C, seed))} |")


if __name__ == "__main__":
    main()
