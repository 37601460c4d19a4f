"""In-process GGUF models through llama-cpp-python, with log-probabilities from the logits.

llama-cpp-python's own `logprobs=` sorts the whole vocabulary in Python for every
token (10-40x the generation time on 2 cores); here the model keeps every
position's logits (`logits_all`) and numpy takes the log-softmax of just the rows
needed. The prompt's evaluated prefix is reused across the options of an item.
Pass-through chat uses the model's own chat template (`create_chat_completion`); its
stream is produced in the worker thread and handed to the event loop chunk by chunk.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from ladder.backends.base import (
    DEFAULT_PARAMS,
    PASSTHROUGH_MAX_TOKENS,
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    OptionScores,
    StreamBroken,
    TextStream,
    Usage,
    with_option,
)
from ladder.backends.build import llama_cpp_module
from ladder.backends.embedded import EMBEDDED, embedded_path


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (float32 loses the small probabilities)."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


_LOADING = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp prints load-time notes even when not verbose, from C to fd 2 and through
    llama-cpp-python's log callback to sys.stderr; they would break progress bars. Load
    errors still surface as exceptions. One load at a time in the process: the swaps of
    fd 2 and sys.stderr (and llama-cpp-python's own of sys.stdout) are process-wide, and
    two interleaved in threads (a pyramid's layer 1 starting concurrently) would leave
    the process printing to /dev/null."""
    with _LOADING:
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _close_files(*files: object) -> None:
    for f in files:
        if hasattr(f, "close"):
            f.close()


@cache
def use_plain_weight_buffers() -> None:
    """Make llama.cpp keep weights in plain buffers, not the 'extra' repacked (AMX /
    AVX-512) ones: on VMs whose CPU advertises AMX without the kernel enabling it, every
    decode with those buffers segfaults (seen on this project's CI machines). For the small
    embedded models the plain buffers cost nothing measurable. Idempotent, process-wide."""
    import llama_cpp.llama_cpp as low

    default = low.llama_model_default_params

    def plain() -> object:
        params = default()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = plain


@cache
def _llama_class() -> type:
    """llama_cpp.Llama, imported on first use (the extra is optional)."""
    llama_cpp = llama_cpp_module()
    Llama, _utils = llama_cpp.Llama, llama_cpp._utils
    use_plain_weight_buffers()
    # it opens two /dev/null files at import and never closes them: ResourceWarnings at exit
    atexit.register(_close_files, getattr(_utils, "outnull_file", None),
                    getattr(_utils, "errnull_file", None))
    return Llama


_END = object()  # the end of a chat stream


def _sample(row: np.ndarray, temperature: float) -> int:
    """A token drawn from the softmax of the log-probabilities `row` at `temperature`."""
    weights = np.exp((row - row.max()) / temperature)
    return int(np.random.default_rng().choice(len(row), p=weights / weights.sum()))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlamaCppBackend(Backend):
    """A GGUF model in this process. `model`: an embedded model's name or a .gguf path.

    Calls are serialised (one llama.cpp context is not thread-safe) and run in a worker
    thread so the event loop stays free. n_threads defaults to every core (llama-cpp-python's
    default is half of them, 1.5x slower for Gemma on 2 cores)."""

    def __init__(self, model: str, n_ctx: int = 512, n_threads: int | None = None):
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llama = None
        self._lock = threading.Lock()

    def _load(self):
        if self._llama is None:
            Llama = _llama_class()
            path = embedded_path(self.model) if self.model in EMBEDDED else Path(self.model)
            if not path.is_file():
                raise BackendError(f"model file not found: {path} (or use an embedded model: "
                                   f"{', '.join(EMBEDDED)})")
            try:
                with _quiet_stderr():
                    self._llama = Llama(str(path), n_ctx=self.n_ctx, logits_all=True,
                                        n_threads=self.n_threads or os.cpu_count(),
                                        verbose=False)
            except ValueError as error:
                raise BackendError(f"llama.cpp could not load {path}: {error}") from None
        return self._llama

    def _tokens(self, text: str, bos: bool = True) -> list[int]:
        return self._load().tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def _fit(self, n: int) -> None:
        if n > self.n_ctx:
            raise BackendError(f"{n} tokens do not fit the context of {self.n_ctx} "
                               f"('{self.model}'); raise n_ctx in the config")

    def _feed(self, tokens: list[int]) -> None:
        """Make the context hold exactly `tokens`, evaluating only past the shared prefix."""
        llama = self._load()
        self._fit(len(tokens))
        keep = _common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        keep = min(keep, len(tokens) - 1)  # re-evaluate at least one token for fresh logits
        llama.n_tokens = keep
        llama.eval(tokens[keep:])

    def _score_sync(self, prompt: str, options: Sequence[str]) -> OptionScores:
        start = time.perf_counter()
        context = self._tokens(prompt)
        per_option, evaluated = [], len(context)
        for option in options:
            whole = self._tokens(with_option(prompt, option))
            split = _common_prefix(context, whole)
            if split == 0 or split == len(whole):
                raise BackendError(f"option {option!r} has no tokens of its own after the prompt")
            self._feed(whole)
            rows = log_softmax(self._llama.scores[split - 1: len(whole) - 1])
            per_option.append(tuple(rows[np.arange(len(rows)), whole[split:]].tolist()))
            evaluated += len(whole) - split
        return OptionScores(tuple(per_option),
                            Usage(evaluated, 0, time.perf_counter() - start))

    def _generate_sync(self, prompt: str, max_tokens: int, stop: Sequence[str],
                       temperature: float) -> Generation:
        """Greedy at temperature 0, else sampled from the tempered softmax; the logprobs
        are always the untempered model's."""
        start = time.perf_counter()
        tokens = self._tokens(prompt)
        self._fit(len(tokens) + max_tokens)
        self._feed(tokens)
        llama = self._llama
        eos = llama.token_eos()
        out: list[int] = []
        logprobs: list[float] = []
        text = ""
        for _ in range(max_tokens):
            row = log_softmax(llama.scores[llama.n_tokens - 1])
            token = int(np.argmax(row)) if temperature <= 0 else _sample(row, temperature)
            if token == eos:
                break
            out.append(token)
            logprobs.append(float(row[token]))
            text = llama.detokenize(out).decode("utf-8", errors="ignore")
            cut = min((text.find(s) for s in stop if s and s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                break
            llama.eval([token])
        return Generation(text, tuple(logprobs),
                          Usage(len(tokens), len(out), time.perf_counter() - start))

    def _locked(self, function, *args):
        with self._lock:
            return function(*args)

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        return await asyncio.to_thread(self._locked, self._generate_sync, prompt, max_tokens,
                                       tuple(stop), temperature)

    def _chat_call(self, messages: list[dict], params: GenerationParams,
                   stream: bool) -> Callable[[], object]:
        def call() -> object:
            try:
                return self._load().create_chat_completion(
                    messages=messages, stream=stream, stop=list(params.stop or ()),
                    max_tokens=params.max_tokens or PASSTHROUGH_MAX_TOKENS,
                    temperature=params.temperature or 0.0)
            except ValueError as error:  # e.g. the prompt exceeds the context
                raise BackendError(f"{self.model}: {error}") from None
        return call

    def _templated(self) -> bool:
        """Whether the GGUF carries a chat template. Base models (the embedded Gemma 3
        270M) do not, and llama-cpp-python's fallback format makes them stop at once, so
        they get the plain rendering of `Backend.chat`."""
        return bool(self._load().metadata.get("tokenizer.chat_template"))

    async def chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                   ) -> Generation:
        """Through the model's chat template (the plain rendering without one)."""
        if not await asyncio.to_thread(self._templated):
            return await super().chat(messages, params)
        start = time.perf_counter()
        data = await asyncio.to_thread(self._locked, self._chat_call(messages, params, False))
        usage = data.get("usage") or {}
        return Generation(data["choices"][0]["message"]["content"] or "", None,
                          Usage(int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or 0),
                                time.perf_counter() - start))

    def stream_chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                    ) -> TextStream:
        return TextStream(self._chat_stream(messages, params))

    async def _chat_stream(self, messages: list[dict], params: GenerationParams
                           ) -> AsyncIterator[str | Usage]:
        """Chunks from the worker thread through a queue; closing or cancelling the stream
        tells the thread to stop after its current token."""
        if not await asyncio.to_thread(self._templated):
            plain = super().stream_chat(messages, params)
            async for delta in plain:
                yield delta
            yield plain.usage
            return
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        call = self._chat_call(messages, params, True)

        def post(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                with self._lock:
                    chunks: Iterator[dict] = call()  # type: ignore[assignment]
                    for chunk in chunks:
                        if stop.is_set():
                            break
                        post(chunk["choices"][0]["delta"].get("content") or "")
            except BaseException as error:  # handed to the loop, raised there
                post(error)
            post(_END)

        loop.run_in_executor(None, produce)
        count = 0
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    broken = StreamBroken if count else BackendError
                    raise broken(f"{self.model}: chat stream failed: {item}") from item
                if item:
                    count += 1
                    yield item
        finally:
            stop.set()
        # llama-cpp-python's stream reports no usage: one chunk is one token, prompt unknown
        yield Usage(0, count, time.perf_counter() - start)

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        return await asyncio.to_thread(self._locked, self._score_sync, prompt, tuple(options))

    async def aclose(self) -> None:
        if self._llama is not None:
            with self._lock:
                self._llama.close()
                self._llama = None
