"""Prompt features for pre-generation routers (theory.md §4.8): all computed locally.

Two kinds, one interface (`fit(prompts, tasks)`, `transform(prompts, tasks)`, and
`transform_one(prompt, task)` for a single live decision):

- `TextFeatures`: TF-IDF of word 1–2-grams (vocabulary fitted on the training prompts) plus
  the prompt's length. Cheap and always available. The single-prompt path reuses the fitted
  analyzer and vocabulary directly, since scikit-learn's transform on one document costs
  about a millisecond of validation.
- `EmbeddingFeatures`: WordLlama sentence embeddings (the `ladder[router]` extra). Its
  default weights and tokenizer ship inside the PyPI wheel, and are loaded from the installed
  package with downloads disabled: no model hub is ever contacted.

Both append the task (the log's `benchmark`) as one-hot columns when training saw several,
so a router can share strength across tasks; an unknown task gets zeros.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer

FEATURE_KINDS = ("text", "embedding")
EXTRA_HINT = "pip install 'ladder[router]'"


class FeatureError(ValueError):
    """Prompt features that cannot be computed (missing extra, no prompts): a user error."""


def _texts(prompts: Sequence[object] | np.ndarray | None) -> list[str]:
    if prompts is None:
        raise FeatureError("the log has no 'prompt' column: routers need the query texts")
    return ["" if p is None or p != p else str(p) for p in prompts]


def length_features(texts: Sequence[str]) -> np.ndarray:
    """log(1 + characters) and log(1 + words): longer prompts are often harder."""
    return np.array([[math.log1p(len(t)), math.log1p(len(t.split()))] for t in texts])


class TransientCache:
    """Attributes named `_cache*` (a loaded model, a compiled fast path, a memo) are rebuilt
    on demand and never saved with the estimator."""

    def __getstate__(self) -> dict:
        state = super().__getstate__()  # type: ignore[misc]
        return {k: v for k, v in state.items() if not k.startswith("_cache")}


class _PromptFeatures(TransientCache, BaseEstimator):
    """Length scaling and task columns shared by both kinds; subclasses add the content."""

    def _fit_common(self, texts: list[str], tasks: Sequence[object] | None) -> None:
        lengths = length_features(texts)
        self.length_mean_ = lengths.mean(axis=0)
        self.length_scale_ = np.where(lengths.std(axis=0) > 0, lengths.std(axis=0), 1.0)
        distinct = sorted({str(t) for t in tasks}) if tasks is not None else []
        self.tasks_ = tuple(distinct) if len(distinct) > 1 else ()

    def _common(self, texts: list[str], tasks: Sequence[object] | None) -> np.ndarray:
        """(n, 2 + #tasks): scaled lengths, then the one-hot task."""
        lengths = (length_features(texts) - self.length_mean_) / self.length_scale_
        onehot = np.zeros((len(texts), len(self.tasks_)))
        if self.tasks_ and tasks is not None:
            where = {t: j for j, t in enumerate(self.tasks_)}
            for i, task in enumerate(tasks):
                j = where.get(str(task))
                if j is not None:
                    onehot[i, j] = 1.0
        return np.hstack([lengths, onehot])


class TextFeatures(_PromptFeatures):
    """TF-IDF word n-grams + length (+ task). min_df drops n-grams seen in one prompt only."""

    kind = "text"

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2,
                 max_features: int = 20000):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_features = max_features

    def _vectorizer(self, min_df: int = 1) -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=tuple(self.ngram_range), min_df=min_df,
                               max_features=self.max_features, sublinear_tf=True)

    def fit(self, prompts: Sequence[object], tasks: Sequence[object] | None = None
            ) -> TextFeatures:
        """Fitted: `terms_` (the vocabulary in column order) and `idf_`; kept as two arrays
        because a saved dict of every n-gram is many times larger."""
        texts = _texts(prompts)
        for min_df in dict.fromkeys((self.min_df, 1)):  # tiny logs: every n-gram is rare
            try:
                vectorizer = self._vectorizer(min_df).fit(texts)
                break
            except ValueError:
                continue
        else:
            raise FeatureError("the prompts have no words to build text features from")
        self.terms_ = vectorizer.get_feature_names_out().astype(str)
        self.idf_ = vectorizer.idf_
        self._cache_vectorizer = vectorizer
        self._fit_common(texts, tasks)
        return self

    def _fitted_vectorizer(self) -> TfidfVectorizer:
        if not hasattr(self, "_cache_vectorizer"):  # after loading: rebuilt from the arrays
            vectorizer = self._vectorizer()
            vectorizer.vocabulary = {t: j for j, t in enumerate(self.terms_.tolist())}
            vectorizer._validate_vocabulary()
            vectorizer.idf_ = self.idf_
            self._cache_vectorizer = vectorizer
        return self._cache_vectorizer

    def transform(self, prompts: Sequence[object], tasks: Sequence[object] | None = None
                  ) -> sp.csr_matrix:
        texts = _texts(prompts)
        words = self._fitted_vectorizer().transform(texts)
        return sp.hstack([words, sp.csr_matrix(self._common(texts, tasks))], format="csr")

    def transform_one(self, prompt: str, task: object = None) -> sp.csr_matrix:
        """The same row as `transform([prompt], [task])`, a few times faster."""
        if not hasattr(self, "_cache_fast"):
            vec = self._fitted_vectorizer()
            self._cache_fast = (vec.build_analyzer(), vec.vocabulary_, self.idf_,
                                len(self.terms_))
        analyzer, vocabulary, idf, width = self._cache_fast
        text = "" if prompt is None else str(prompt)
        counts = Counter(j for term in analyzer(text) if (j := vocabulary.get(term)) is not None)
        index = np.fromiter(counts, dtype=np.int32, count=len(counts))
        values = (np.log(np.fromiter(counts.values(), float, len(counts))) + 1.0) * idf[index]
        norm = np.sqrt(values @ values)
        order = np.argsort(index)
        index, values = index[order], values[order] / (norm if norm > 0 else 1.0)
        common = self._common([text], None if task is None else [task])[0]
        nz = np.flatnonzero(common)
        data = np.r_[values, common[nz]]
        columns = np.r_[index, width + nz].astype(np.int32)
        return sp.csr_matrix((data, columns, np.array([0, len(data)])),
                             shape=(1, width + len(common)))


@cache
def load_embedder(model: str = "l2_supercat", dim: int = 256) -> object:
    """The WordLlama model from the installed wheel, downloads disabled (offline by design).

    Raises FeatureError, with the install command, when the `router` extra is missing.
    """
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        raise FeatureError(f"embedding features need the optional 'router' extra: "
                           f"{EXTRA_HINT} (installs wordllama)") from None
    package = Path(wordllama.__file__).parent
    try:  # the tokenizer ships in <package>/tokenizers, which is where cache_dir points
        return WordLlama.load(model, cache_dir=package, dim=dim, disable_download=True)
    except (FileNotFoundError, ValueError) as error:
        raise FeatureError(f"wordllama is installed but its bundled '{model}' weights "
                           f"could not be loaded offline ({error})") from None


def embeddings_available() -> bool:
    """True when the `router` extra is installed and its bundled model loads."""
    try:
        load_embedder()
    except FeatureError:
        return False
    return True


class EmbeddingFeatures(_PromptFeatures):
    """Unit-norm WordLlama sentence embeddings + length (+ task), dense."""

    kind = "embedding"

    def __init__(self, model: str = "l2_supercat", dim: int = 256):
        self.model = model
        self.dim = dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "_cache_model"):
            self._cache_model = load_embedder(self.model, self.dim)
        return np.asarray(self._cache_model.embed(texts, norm=True), dtype=float)

    def fit(self, prompts: Sequence[object], tasks: Sequence[object] | None = None
            ) -> EmbeddingFeatures:
        texts = _texts(prompts)
        self._embed(texts[:1])  # fail now, not at the first decision, if the extra is missing
        self._fit_common(texts, tasks)
        return self

    def transform(self, prompts: Sequence[object], tasks: Sequence[object] | None = None
                  ) -> np.ndarray:
        texts = _texts(prompts)
        return np.hstack([self._embed(texts), self._common(texts, tasks)])

    def transform_one(self, prompt: str, task: object = None) -> np.ndarray:
        return self.transform([prompt], None if task is None else [task])


def make_features(kind: str) -> _PromptFeatures:
    """An unfitted featuriser of one kind ('text' or 'embedding')."""
    if kind == "text":
        return TextFeatures()
    if kind == "embedding":
        return EmbeddingFeatures()
    raise FeatureError(f"unknown prompt feature kind '{kind}'; choose from "
                       f"{', '.join(FEATURE_KINDS)}")
