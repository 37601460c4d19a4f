"""QueryTable: a validated run log pivoted to one row per query and one column per model.

Every fit and evaluation works on this wide view; the ladder order is by mean cost
unless the caller gives one, and the code that trains re-sorts it on its training rows
(`by_cost`), so test rows never choose the ladder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ladder.runlog.schema import RunLogError

# per-model signals; a log may lack any of them (NaN). runtime.record fills the same names
# from ModelOutput attributes, so each must be one.
SIGNAL_COLUMNS = ("confidence", "logprob_mean", "logprob_min", "tokens_out", "margin", "entropy")


@dataclass(frozen=True)
class QueryTable:
    """Aligned (n queries × k models) arrays; NaN / None where a signal is missing."""

    query_ids: np.ndarray
    models: tuple[str, ...]
    quality: np.ndarray
    cost: np.ndarray
    signals: dict[str, np.ndarray]
    answers: np.ndarray | None = None  # int codes per query: equal code = same answer, -1 missing
    sample_share: np.ndarray | None = None
    # (n, k, S) codes of each model's sampled answers, in `answers`' code space: -1 a failed
    # sample, PADDING past a model's last sample (Pyramid MoA votes over them)
    sample_codes: np.ndarray | None = None
    prompt_len: np.ndarray | None = None
    prompts: np.ndarray | None = None  # the query texts (object, None where missing): routers
    split: np.ndarray | None = None
    benchmark: np.ndarray | None = None
    # where each cell's quality label came from (object: human / reference / judge, None
    # where the log names none or the cell is unlabelled; `ladder.judge`), and the judge's
    # own label of each cell (NaN where it gave none), kept beside a human label too: the
    # cells holding both measure the judge's error (`ladder.policies.ppi`)
    label_source: np.ndarray | None = None
    judge_quality: np.ndarray | None = None
    dropped: int = 0
    extra: dict = field(default_factory=dict)
    # The model order is by mean cost (not given by the caller), so code that trains on a
    # subset of rows re-sorts it on those rows (`by_cost`); a given order is never re-sorted.
    cost_ordered: bool = False

    @property
    def n(self) -> int:
        return len(self.query_ids)

    @property
    def k(self) -> int:
        return len(self.models)

    def index(self, model: str) -> int:
        return self.models.index(model)

    def rows(self, mask_or_index: np.ndarray | slice) -> QueryTable:
        """The same table restricted to some queries (a slice gives views, no copies)."""
        sel = mask_or_index if isinstance(mask_or_index, slice) else np.asarray(mask_or_index)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[sel]

        return replace(
            self,
            query_ids=self.query_ids[sel],
            quality=self.quality[sel],
            cost=self.cost[sel],
            signals={name: a[sel] for name, a in self.signals.items()},
            answers=take(self.answers),
            sample_share=take(self.sample_share),
            sample_codes=take(self.sample_codes),
            prompt_len=take(self.prompt_len),
            prompts=take(self.prompts),
            split=take(self.split),
            benchmark=take(self.benchmark),
            label_source=take(self.label_source),
            judge_quality=take(self.judge_quality),
        )

    def select_models(self, models: Sequence[str]) -> QueryTable:
        """The same queries with only these models, in this order (which is then a given one)."""
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise RunLogError(
                f"model(s) {', '.join(unknown)} not in the log; it has {', '.join(self.models)}",
                "model",
            )
        cols = [self.index(m) for m in models]

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[:, cols]

        return replace(
            self,
            models=tuple(models),
            quality=self.quality[:, cols],
            cost=self.cost[:, cols],
            signals={name: a[:, cols] for name, a in self.signals.items()},
            answers=take(self.answers),
            sample_share=take(self.sample_share),
            sample_codes=None if self.sample_codes is None else self.sample_codes[:, cols],
            label_source=take(self.label_source),
            judge_quality=take(self.judge_quality),
            cost_ordered=False,
        )

    def by_cost(self, reference: QueryTable | None = None) -> QueryTable:
        """The ladder re-sorted by ascending mean cost over `reference`'s rows (default: these),
        ties kept in the current order. A table not in cost order (the caller gave the order)
        is returned as it is.

        Training code sorts on its training rows, and gives the test table the same order
        with `test.by_cost(train)`.
        """
        if not self.cost_ordered:
            return self
        ref = self if reference is None else reference
        mean = dict(zip(ref.models, ref.mean_cost(), strict=True))
        return replace(self.select_models(sorted(self.models, key=mean.__getitem__)),
                       cost_ordered=True)

    def mean_cost(self) -> np.ndarray:
        return self.cost.mean(axis=0)

    def mean_quality(self) -> np.ndarray:
        return self.quality.mean(axis=0)

    @classmethod
    def from_runlog(
        cls,
        df: pd.DataFrame,
        models: Sequence[str] | None = None,
        benchmark: str | None = None,
    ) -> QueryTable:
        """Pivot a validated run log. Queries missing any selected model are dropped and counted.

        `models` fixes the ladder order; without it the order is by mean cost over every row.
        """
        if benchmark is not None:
            if "benchmark" not in df.columns:
                raise RunLogError("--benchmark given but the log has no 'benchmark' column",
                                  "benchmark")
            known = sorted(df["benchmark"].dropna().unique())
            df = df[df["benchmark"] == benchmark]
            if df.empty:
                raise RunLogError(
                    f"benchmark '{benchmark}' not in the log; it has {', '.join(known)}",
                    "benchmark",
                )
        present = list(dict.fromkeys(df["model"]))
        if models is not None:
            repeated = list(dict.fromkeys(m for m in models if list(models).count(m) > 1))
            if repeated:
                raise RunLogError(f"model(s) {', '.join(repeated)} repeated; name each model "
                                  "once", "model")
            missing = [m for m in models if m not in present]
            if missing:
                raise RunLogError(
                    f"model(s) {', '.join(missing)} not in the log; it has {', '.join(present)}",
                    "model",
                )
            if len(models) < 2:
                raise RunLogError("choose at least two models", "model")
            df = df[df["model"].isin(models)]
        chosen = list(models) if models is not None else present
        counts = df.groupby("query_id", sort=False)["model"].nunique()
        complete = counts.index[counts.to_numpy() == len(chosen)]
        dropped = len(counts) - len(complete)
        if len(complete) == 0:
            raise RunLogError("no query has a row for every model", "query_id")
        df = df[df["query_id"].isin(complete)]
        query_ids = np.asarray(complete, dtype=object)

        def wide(column: str, dtype: type | None = float) -> np.ndarray:
            table = df.pivot(index="query_id", columns="model", values=column)
            table = table.reindex(index=query_ids, columns=chosen)
            return table.to_numpy(dtype=dtype) if dtype is not None else table.to_numpy()

        quality = wide("quality")
        cost = wide("cost")
        if models is None:
            order = np.argsort(cost.mean(axis=0), kind="stable")
            chosen = [chosen[i] for i in order]
            quality, cost = quality[:, order], cost[:, order]
        signals = {
            name: wide(name) if name in df.columns else np.full(quality.shape, np.nan)
            for name in SIGNAL_COLUMNS
        }
        sample_share = sample_lists = None
        if "samples" in df.columns:
            df = df.assign(_share=df["samples"].map(top_answer_share))
            sample_share = wide("_share")
            sample_lists = wide("samples", None)
        label_source = None
        if "label_source" in df.columns:
            label_source = np.vectorize(lambda s: s if isinstance(s, str) else None,
                                        otypes=[object])(wide("label_source", None))
        judge_quality = wide("judge_quality") if "judge_quality" in df.columns else None
        answers, sample_codes = _answer_codes(
            wide("answer", None) if "answer" in df.columns else None, sample_lists)
        per_query = df.drop_duplicates("query_id").set_index("query_id").reindex(query_ids)
        prompt_len = prompts = None
        if "prompt" in df.columns:
            prompts = per_query["prompt"].map(
                lambda p: None if p is None or p != p else str(p)
            ).to_numpy(dtype=object)
            prompt_len = np.array([np.nan if p is None else float(len(p)) for p in prompts])

        def column(name: str) -> np.ndarray | None:
            return per_query[name].to_numpy(dtype=object) if name in per_query.columns else None

        return cls(
            query_ids=query_ids,
            models=tuple(chosen),
            quality=quality,
            cost=cost,
            signals=signals,
            answers=answers,
            sample_share=sample_share,
            sample_codes=sample_codes,
            prompt_len=prompt_len,
            prompts=prompts,
            split=column("split"),
            benchmark=column("benchmark"),
            label_source=label_source,
            judge_quality=judge_quality,
            dropped=int(dropped),
            cost_ordered=models is None,
        )


PADDING = -2  # sample_codes past a model's last sample (-1 is a sample that failed)


def _as_list(samples: object) -> list:
    if samples is None or (isinstance(samples, float) and np.isnan(samples)):
        return []
    return list(samples)


def _answer_codes(answers: np.ndarray | None, samples: np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Integer codes for answers (n, k) and sampled answers (n, k, S), one code space, so
    agreement within and across models is an integer comparison; -1 where missing."""
    lists = None if samples is None else [[_as_list(c) for c in row] for row in samples]
    width = max((len(c) for row in lists or [] for c in row), default=0)
    values = [] if answers is None else list(answers.ravel())
    values += [c[j] if j < len(c) else None for row in lists or [] for c in row
               for j in range(width)]
    flat = pd.Series(values, dtype=object).map(
        lambda a: None if a is None or a != a else str(a))
    codes, _ = pd.factorize(flat, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    size = 0 if answers is None else answers.size
    answer_codes = None if answers is None else codes[:size].reshape(answers.shape)
    if lists is None:
        return answer_codes, None
    sampled = codes[size:].reshape(len(lists), len(lists[0]) if lists else 0, width)
    lengths = np.array([[len(c) for c in row] for row in lists]).reshape(sampled.shape[:2])
    sampled[np.arange(width)[None, None, :] >= lengths[:, :, None]] = PADDING
    return answer_codes, sampled


def top_answer_share(samples: object) -> float:
    """Share of the samples that give the most frequent non-empty answer (self-consistency)."""
    if samples is None or (isinstance(samples, float) and np.isnan(samples)):
        return np.nan
    samples = list(samples)
    answers = [s for s in samples if s is not None and s == s]
    if not answers:
        return 0.0 if samples else np.nan  # every sample failed: no agreement, not missing
    _, counts = np.unique(np.asarray(answers, dtype=str), return_counts=True)
    return float(counts.max()) / len(samples)
