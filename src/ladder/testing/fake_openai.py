"""A fake OpenAI-compatible upstream: deterministic answers, injectable faults, no weights.

A bare ASGI app (no framework, so a gateway benchmark measures the gateway, not this
server) serving POST /v1/completions and /v1/chat/completions (streamed or not, with
`logprobs`, and `echo` + `logprobs` option scoring like llama.cpp's server) and GET
/v1/models. Answers come from FakeBackend's knowledge model: a pure function of the prompt.

Faults, per request by header `x-fake-fault` (else by model name, `app.faults`):
`500` / `503` (that status, echoing the Authorization header), `hang` (no answer for
`hang_s`), `malformed` (an invalid JSON body or stream chunk), `drop` (the connection
closes after the headers, or after the first chunk of a stream) and `drop-start` (closes
after the headers, streams too); the first `fail_first` calls get 500. `app.stats` counts
calls, faults and clients that went away.

    with serve(FakeOpenAI(truths)) as base_url:   # http://127.0.0.1:PORT/v1
        ...

    python -m ladder.testing.fake_openai --port 8001 --latency-ms 20 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ladder.backends.base import render_messages
from ladder.backends.fake import FakeBackend, _unit

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

FAULTS = ("500", "503", "hang", "malformed", "drop", "drop-start")
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_TOKEN = re.compile(r"\s*\S+")


@dataclass
class Stats:
    """What the server saw: calls (generation requests), faults injected by name, clients
    that disconnected before their answer was complete, and the latest request bodies."""

    calls: int = 0
    faults: Counter = field(default_factory=Counter)
    disconnects: int = 0
    bodies: deque = field(default_factory=lambda: deque(maxlen=256))


class _Client:
    """Watches for the client going away while an answer is made (started only when the
    answer waits: the fast path costs no task)."""

    def __init__(self, receive: Receive):
        self._task = asyncio.ensure_future(self._until_gone(receive))

    @staticmethod
    async def _until_gone(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds`; True when the client has gone (before or meanwhile)."""
        if seconds > 0 and not self._task.done():
            await asyncio.wait({self._task}, timeout=seconds)
        return self._task.done()

    def close(self) -> None:
        self._task.cancel()


class FakeOpenAI:
    """The ASGI app. `truths`: prompt text → right answer (FakeBackend's), known with
    probability `skill`. `latency_s` before each answer (its first chunk for streams),
    `chunk_delay_s` between stream chunks."""

    def __init__(self, truths: Mapping[str, str] | None = None, *, skill: float = 0.7,
                 seed: int = 0, latency_s: float = 0.0, chunk_delay_s: float = 0.0,
                 fail_first: int = 0, faults: Mapping[str, str] | None = None,
                 models: Sequence[str] = ("fake",), hang_s: float = 3600.0):
        self.model = FakeBackend(truths, skill, seed)
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.fail_first = fail_first
        self.faults = dict(faults or {})  # model name → fault, for requests without the header
        self.models = tuple(models)
        self.hang_s = hang_s
        self.stats = Stats()

    def reset(self) -> None:
        """Fresh stats and no model faults (fail_first counts from the next call again)."""
        self.stats = Stats()
        self.faults.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return None
        method, path = scope["method"], scope["path"]
        if path == "/v1/models" and method == "GET":
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            return await _respond(send, 200, {"object": "list", "data": data})
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return await _respond(send, 404, _error(f"no route {method} {path}"))
        try:
            request = json.loads(await _body(receive))
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return await _respond(send, 400, _error("the body is not a JSON object"))
        self.stats.calls += 1
        self.stats.bodies.append(request)
        fault = self._fault(scope, request)
        client = _Client(receive) if fault == "hang" or self.latency_s or (
            request.get("stream") and self.chunk_delay_s) else None
        try:
            await self._answer(path == "/v1/chat/completions", request, fault, client, send,
                               _echoed_key(scope))
        finally:
            if client is not None:
                client.close()

    def _fault(self, scope: Scope, request: dict[str, Any]) -> str | None:
        fault = next((v.decode() for k, v in scope["headers"] if k == b"x-fake-fault"), None)
        fault = fault or self.faults.get(str(request.get("model")))
        if fault is None and self.stats.calls <= self.fail_first:
            fault = "500"
        if fault is not None:
            self.stats.faults[fault] += 1
        return fault

    async def _answer(self, chat: bool, request: dict[str, Any], fault: str | None,
                      client: _Client | None, send: Send, key: str) -> None:
        if fault in ("500", "503"):
            return await _respond(send, int(fault), _error(f"injected fault {fault}{key}"))
        if fault not in (None, *FAULTS):
            return await _respond(send, 400, _error(f"unknown x-fake-fault {fault!r}; "
                                                    f"choose one of {', '.join(FAULTS)}"))
        wait = self.hang_s if fault == "hang" else self.latency_s
        if client is not None and await client.pause(wait):
            self.stats.disconnects += 1
            return None
        if fault == "hang":
            return await _respond(send, 504, _error("hung"))
        stream = bool(request.get("stream"))
        if fault == "drop-start" or (fault == "drop" and not stream):
            return await _start(send, 200, _SSE if stream else _JSON)  # then close: no body
        if fault == "malformed" and not stream:
            return await _raw(send, 200, _JSON, b'{"choices": [')
        if stream:
            return await self._stream(chat, request, fault, client, send)
        body = self._chat(request) if chat else self._completion(request)
        return await _respond(send, 200, body)

    def _generate(self, prompt: str, request: dict[str, Any]) -> tuple[str, tuple[float, ...]]:
        stop = request.get("stop") or ()
        generation = self.model.reply(prompt, int(request.get("max_tokens") or 16),
                                      (stop,) if isinstance(stop, str) else tuple(stop))
        return generation.text, generation.token_logprobs or ()

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        prompt = _prompt(request)
        text, logprobs = self._generate(prompt, request)
        words = _words(text)
        echo = bool(request.get("echo"))
        block = None
        if request.get("logprobs") is not None:
            tokens = [(m.start(), m.group()) for m in _TOKEN.finditer(prompt)] if echo else []
            values = self._echo_logprobs(prompt, tokens)
            at = len(prompt) if echo else 0
            for word, value in zip(words, logprobs, strict=True):
                tokens.append((at, word))
                values.append(value)
                at += len(word)
            block = {"tokens": [t for _, t in tokens], "token_logprobs": values,
                     "text_offset": [o for o, _ in tokens], "top_logprobs": None}
        choice = {"index": 0, "text": prompt + text if echo else text, "logprobs": block,
                  "finish_reason": "stop"}
        return {"id": "cmpl-fake", "object": "text_completion", "created": 0,
                "model": request.get("model"), "choices": [choice],
                "usage": _usage(prompt, len(words))}

    def _echo_logprobs(self, text: str, tokens: list[tuple[int, str]]) -> list[float | None]:
        """Log-probabilities of the echoed tokens, as FakeBackend scores options: the right
        answer at the end of a prompt the model knows gets -0.05 a token, every other token
        a fixed pseudo-random value (the first token has no context: None)."""
        truth = self.model.truth(text)
        tail = len(text)
        if truth and text.endswith(truth):
            prompt = text[: -len(truth)]
            if self.model.knows(prompt[:-1] if prompt.endswith(" ") else prompt):
                tail = len(prompt)
        values: list[float | None] = [None]
        for at, token in tokens[1:]:
            end = at + len(token)
            values.append(-0.05 if end > tail
                          else -0.5 - 4.0 * _unit(self.model.seed, "echo", text[:end]))
        return values[: len(tokens)]

    def _chat(self, request: dict[str, Any]) -> dict[str, Any]:
        prompt = render_messages(request.get("messages") or [])
        text, logprobs = self._generate(prompt, request)
        words = _words(text)
        block = None
        if request.get("logprobs"):
            block = {"content": [{"token": w, "logprob": v, "bytes": None, "top_logprobs": []}
                                 for w, v in zip(words, logprobs, strict=True)]}
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "logprobs": block, "finish_reason": "stop"}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": request.get("model"), "choices": [choice],
                "usage": _usage(prompt, len(words))}

    async def _stream(self, chat: bool, request: dict[str, Any], fault: str | None,
                      client: _Client | None, send: Send) -> None:
        prompt = render_messages(request.get("messages") or []) if chat else _prompt(request)
        text, _ = self._generate(prompt, request)
        words = _words(text)
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, finish: str | None = None) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["delta"] = {} if delta is None else {"content": delta}
            else:
                choice["text"] = delta or ""
                choice["logprobs"] = None
            return {"id": "fake", "object": kind, "created": 0, "model": request.get("model"),
                    "choices": [choice]}

        await _start(send, 200, _SSE)
        if fault == "malformed":
            await _chunk(send, b'data: {"choices": [\n\n')
        for k, word in enumerate(words):
            if k and client is not None and await client.pause(self.chunk_delay_s):
                self.stats.disconnects += 1
                return
            await _chunk(send, _event(chunk(word)))
            if fault == "drop":
                return  # the response is left incomplete: the server closes the connection
        events = [chunk(None, "stop")]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "fake", "object": kind, "created": 0,
                           "model": request.get("model"), "choices": [],
                           "usage": _usage(prompt, len(words))})
        body = b"".join(map(_event, events)) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _echoed_key(scope: Scope) -> str:
    """The request's Authorization header, which fault answers echo as careless servers do
    (so tests can check that a key never reaches an error message)."""
    value = next((v.decode() for k, v in scope["headers"] if k == b"authorization"), "")
    return f" (authorization: {value})" if value else ""


def _prompt(request: dict[str, Any]) -> str:
    prompt = request.get("prompt") or ""
    return prompt[0] if isinstance(prompt, list) and prompt else str(prompt)


def _words(text: str) -> list[str]:
    """The text in word tokens whose concatenation is the text ("a b" → "a", " b")."""
    return [m.group() for m in _TOKEN.finditer(text)] or [text]


def _usage(prompt: str, completion: int) -> dict[str, int]:
    tokens = len(prompt.split())
    return {"prompt_tokens": tokens, "completion_tokens": completion,
            "total_tokens": tokens + completion}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_error"}}


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
               ) -> None:
    await _start(send, status, [*headers, (b"content-length", str(len(body)).encode())])
    await send({"type": "http.response.body", "body": body})


async def _respond(send: Send, status: int, data: dict[str, Any]) -> None:
    await _raw(send, status, _JSON, json.dumps(data, separators=(",", ":")).encode())


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@contextlib.contextmanager
def serve(app: Any, host: str = "127.0.0.1", port: int = 0,
          log_level: str = "critical", lifespan: str = "off") -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yields its base URL
    (`http://HOST:PORT/v1`, the port chosen by the system when 0). `lifespan="on"` for
    an app that starts things there (the gateway)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           lifespan=lifespan, access_log=False))
    thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the fake server did not start on {host}:{port}")
        time.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def app_from_env() -> FakeOpenAI:
    """The app the CLI's workers build (they share its settings through the environment)."""
    truths: dict[str, str] = {}
    tasks = os.environ.get("LADDER_FAKE_TASKS")
    if tasks:
        from ladder.tasks import builtin_tasks, load_tasks

        items = builtin_tasks() if tasks == "builtin" else load_tasks(tasks)
        truths = {i.prompt: str(i.reference) for i in items if i.reference is not None}
    return FakeOpenAI(truths, skill=float(os.environ.get("LADDER_FAKE_SKILL", "0.7")),
                      latency_s=float(os.environ.get("LADDER_FAKE_LATENCY_MS", "0")) / 1000)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ladder.testing.fake_openai",
                                     description="A fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skill", type=float, default=0.7)
    parser.add_argument("--tasks", help="a task file whose references it knows, or 'builtin'")
    args = parser.parse_args(argv)
    os.environ["LADDER_FAKE_LATENCY_MS"] = str(args.latency_ms)
    os.environ["LADDER_FAKE_SKILL"] = str(args.skill)
    if args.tasks:
        os.environ["LADDER_FAKE_TASKS"] = args.tasks
    import uvicorn

    uvicorn.run("ladder.testing.fake_openai:app_from_env", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
