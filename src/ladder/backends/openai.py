"""A backend for any OpenAI-compatible HTTP server (vLLM, llama.cpp, Ollama, hosted APIs).

Generation uses /completions or /chat/completions; option scoring needs /completions with
`echo`, because only the echoed prompt carries the log-probabilities of the option tokens.
Pass-through calls (`chat`, `complete`, streamed or not) go to the configured endpoint too:
chat messages to a completions endpoint are rendered as one prompt. Streams are retried
like every call until the response starts; they are parsed in `openai_stream`.
The API key is read from an environment variable and kept out of every message and repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from ladder.backends.base import (
    DEFAULT_PARAMS,
    Backend,
    BackendError,
    Generation,
    GenerationParams,
    OptionScores,
    TextStream,
    Usage,
    render_messages,
    with_option,
)
from ladder.backends.openai_stream import sse_deltas

ENDPOINTS = ("completions", "chat")
_RETRY_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError)  # timeouts are not retried


POOLS = 32  # connection pools per backend at most (see OpenAIBackend._checkout)
CALLER_FAULTS = (400, 413, 422)  # the request was refused: no sign of the server's health


class _StatusError(BackendError):
    """An HTTP error answer; kept apart so `generate` can spot a refused `logprobs`."""

    def __init__(self, message: str, status: int, body: str):
        super().__init__(message)
        self.status = status
        self.body = body
        self.caller_fault = status in CALLER_FAULTS


class OpenAIBackend(Backend):
    """One model on an OpenAI-compatible server (temperature 0 unless a request sets it)."""

    retry_base_s = 0.5  # backoff before retry n is retry_base_s * 2**n; tests set it to 0

    def __init__(self, base_url: str, model: str, endpoint: str = "completions",
                 api_key_env: str | None = None, timeout_s: float = 60.0,
                 logprobs: bool = True, max_retries: int = 2,
                 transport: httpx.AsyncBaseTransport | None = None):
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint is {endpoint!r}; choose one of {', '.join(ENDPOINTS)}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.endpoint = endpoint
        self.scores_options = endpoint == "completions"
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self.max_retries = max_retries
        self._transport = transport
        self._key: str | None = None
        if api_key_env is not None:
            self._key = os.environ.get(api_key_env) or None
            if self._key is None:
                raise BackendError(f"{model}: environment variable {api_key_env} "
                                   "(the API key) is not set or empty")
        self._clients: list[httpx.AsyncClient] = []
        self._idle: list[httpx.AsyncClient] = []
        self._next = 0
        self._tls: ssl.SSLContext | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, "
                f"endpoint={self.endpoint!r})")

    @property
    def _client(self) -> httpx.AsyncClient | None:
        """The first client of the current loop's pools (None once closed)."""
        return self._clients[0] if self._clients else None

    def _checkout(self) -> httpx.AsyncClient:
        """An idle client (the one used last, so a quiet backend reuses one warm
        connection), a new one while all are busy, else the next of POOLS round robin.

        Each client has its own connection pool: httpcore's pool scans all its connections
        (and each queued request) whenever a request starts or ends, so one pool of 64
        connections cost ~6 ms of CPU a request at 64 in flight (bench/gateway.py); small
        pools keep that constant. They share one TLS context. Clients belong to the loop
        that opened them, so a backend used from a new loop (successive `asyncio.run`
        calls) gets new ones. `_send` puts the client back once the answer starts."""
        loop = asyncio.get_running_loop()
        if self._client_loop is not loop:
            self._clients, self._idle, self._client_loop = [], [], loop
        if self._idle:
            return self._idle.pop()
        if len(self._clients) < (1 if self._transport else POOLS):
            if not self._clients:
                self._tls = httpx.create_ssl_context()
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._clients.append(httpx.AsyncClient(headers=headers, timeout=self.timeout_s,
                                                   transport=self._transport,
                                                   verify=self._tls))
            return self._clients[-1]
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    async def aclose(self) -> None:
        if self._client_loop is asyncio.get_running_loop():
            for client in self._clients:
                await client.aclose()
        self._clients, self._idle = [], []

    def _fail(self, path: str, what: str, body: str = "") -> str:
        text = f"{self.model}: POST {path} {what}"
        if body:
            text += f": {body[:200]}"
        return text.replace(self._key, "***") if self._key else text

    async def _send(self, path: str, payload: dict[str, Any],
                    stream: bool = False) -> httpx.Response:
        """POST JSON, retrying 429, 5xx and dropped connections with exponential backoff
        until a response starts; a streamed one is returned open (the caller closes it).
        Timeouts are not retried: a server that timed out is overloaded."""
        client = self._checkout()
        loop = self._client_loop
        try:
            return await self._attempts(client, path, payload, stream)
        finally:
            if self._client_loop is loop and not client.is_closed:
                self._idle.append(client)

    async def _attempts(self, client: httpx.AsyncClient, path: str, payload: dict[str, Any],
                        stream: bool) -> httpx.Response:
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await client.send(client.build_request("POST", url, json=payload),
                                             stream=stream)
                if stream and response.status_code >= 400:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except httpx.TimeoutException:
                raise BackendError(self._fail(path, self._timed_out())) from None
            except _RETRY_ERRORS as error:
                if last:
                    raise BackendError(self._fail(
                        path, f"failed: cannot reach {httpx.URL(url).host} "
                              f"({type(error).__name__})")) from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if last or not (status == 429 or status >= 500):
                    body = response.text
                    raise _StatusError(self._fail(path, f"failed: HTTP {status}", body),
                                       status, body)
            await asyncio.sleep(self.retry_base_s * 2**attempt)
        raise AssertionError("unreachable")

    def _timed_out(self) -> str:
        return f"timed out after {self.timeout_s:g} s"

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON (retried as `_send`) and read a JSON object back."""
        response = await self._send(path, payload)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BackendError(self._fail(path, "gave a non-JSON-object answer", response.text))
        return data

    def _malformed(self, path: str, data: dict[str, Any], error: Exception) -> BackendError:
        return BackendError(self._fail(path, f"gave an unexpected answer "
                                             f"({type(error).__name__}: {error})", str(data)))

    def _request(self, content: str | list[dict], params: GenerationParams,
                 logprobs: bool) -> tuple[str, dict[str, Any], bool]:
        """Path, payload and chat-ness for a prompt (str) or chat messages on this backend's
        endpoint; only the params that are set are sent (else the server's defaults)."""
        chat = self.endpoint == "chat"
        payload: dict[str, Any] = {"model": self.model}
        if chat:
            payload["messages"] = ([{"role": "user", "content": content}]
                                   if isinstance(content, str) else content)
        else:
            payload["prompt"] = content if isinstance(content, str) else render_messages(content)
        if params.max_tokens is not None:
            payload["max_tokens"] = params.max_tokens
        if params.temperature is not None:
            payload["temperature"] = params.temperature
        if params.stop is not None:
            payload["stop"] = list(params.stop)
        if logprobs and self.logprobs:
            payload["logprobs"] = True if chat else 1
        return ("/chat/completions" if chat else "/completions"), payload, chat

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        """Text with logprobs, unless the server has already refused them."""
        return await self._generation(prompt, GenerationParams(max_tokens, tuple(stop),
                                                               temperature), logprobs=True)

    async def complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                       ) -> Generation:
        return await self._generation(prompt, params, logprobs=False)

    async def chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                   ) -> Generation:
        return await self._generation(messages, params, logprobs=False)

    def stream_complete(self, prompt: str, params: GenerationParams = DEFAULT_PARAMS
                        ) -> TextStream:
        return TextStream(self._stream(prompt, params))

    def stream_chat(self, messages: list[dict], params: GenerationParams = DEFAULT_PARAMS
                    ) -> TextStream:
        return TextStream(self._stream(messages, params))

    async def _stream(self, content: str | list[dict], params: GenerationParams
                      ) -> AsyncIterator[str | Usage]:
        """SSE deltas; the response is closed however the stream ends (cancelled too)."""
        path, payload, chat = self._request(content, params, logprobs=False)
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        response = await self._send(path, payload, stream=True)
        try:
            deltas = sse_deltas(response, chat, start, lambda what: self._fail(path, what),
                                self._timed_out())
            async with contextlib.aclosing(deltas):
                async for item in deltas:
                    yield item
        finally:
            await response.aclose()

    async def _generation(self, content: str | list[dict], params: GenerationParams,
                          logprobs: bool) -> Generation:
        path, payload, chat = self._request(content, params, logprobs)
        start = time.perf_counter()
        try:
            data = await self._post(path, payload)
        except _StatusError as error:
            if not ("logprobs" in payload and error.status == 400
                    and "logprob" in error.body.lower()):
                raise
            self.logprobs = False  # this model does not give them: stop asking
            data = await self._post(path, self._request(content, params, False)[1])
        latency = time.perf_counter() - start
        try:
            choice = data["choices"][0]
            block = choice.get("logprobs") or {}
            if chat:
                text = choice["message"]["content"] or ""
                entries = block.get("content") or []
                raw = [entry["logprob"] for entry in entries]
            else:
                text = choice["text"]
                raw = block.get("token_logprobs") or []
            token_logprobs = tuple(float(x) for x in raw if x is not None) or None
            usage = data.get("usage") or {}
            tokens_in = int(usage.get("prompt_tokens") or 0)
            tokens_out = int(usage.get("completion_tokens") or len(token_logprobs or ()))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise self._malformed(path, data, error) from None
        return Generation(text, token_logprobs, Usage(tokens_in, tokens_out, latency))

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        """Each option's token log-probabilities, read from the echoed prompt + option."""
        if self.endpoint != "completions":
            raise BackendError(f"{self.model}: option scoring needs endpoint 'completions' "
                               "(chat APIs do not return prompt log-probabilities)")
        start = time.perf_counter()
        results = await asyncio.gather(*(self._score_one(prompt, o) for o in options))
        latency = time.perf_counter() - start
        return OptionScores(tuple(r[0] for r in results),
                            Usage(sum(r[1] for r in results), 0, latency))

    async def _score_one(self, prompt: str, option: str) -> tuple[tuple[float, ...], int]:
        full = with_option(prompt, option)
        payload = {"model": self.model, "prompt": full, "max_tokens": 1, "temperature": 0,
                   "echo": True, "logprobs": 1}
        data = await self._post("/completions", payload)
        try:
            block = data["choices"][0].get("logprobs") or {}
            tokens = block.get("tokens") or []
            values = block.get("token_logprobs") or []
            offsets = block.get("text_offset")
            if offsets is None:  # some servers omit offsets: rebuild them from token texts
                offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
            picked = [value for token, value, at in zip(tokens, values, offsets, strict=False)
                      if at < len(full) and at + len(token) > len(prompt)]
            usage = data.get("usage") or {}
            tokens_in = int(usage.get("prompt_tokens")
                            or sum(1 for at in offsets if at < len(full)))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise self._malformed("/completions", data, error) from None
        if not picked:
            raise BackendError(f"{self.model}: the server does not return prompt "
                               "log-probabilities (echo), so options cannot be scored")
        if all(value is None for value in picked):
            raise BackendError(f"{self.model}: no log-probabilities for the tokens of option "
                               f"{option!r}")
        # a null logprob is the very first token (no context): it carries no information
        return tuple(float(v) for v in picked if v is not None), tokens_in
