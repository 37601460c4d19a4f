"""The FastAPI app: routes, keys, limits and OpenAI-format errors around the serving logic.

Thin on purpose: every decision is in `serving`, so the app only turns HTTP into calls and
exceptions into status codes. `create_app(config)` for tests and embedding; `app_factory`
for `uvicorn --factory` (how `ladder serve --workers N` starts each worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ladder.backends.base import BackendError
from ladder.config import Config, ConfigError, load_config
from ladder.server import metrics
from ladder.server.auth import Unauthorized
from ladder.server.errors import ClientError, Overloaded, Unavailable, UnknownModel
from ladder.server.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelCard,
    ModelList,
    Readiness,
    error_body,
    sse_content,
)
from ladder.server.serving import Gateway, Opened
from ladder.server.store import Store, StoreError

CONFIG_ENV = "LADDER_CONFIG"  # how `ladder serve --workers` tells each worker its config
UPSTREAM_ENV = "LADDER_UPSTREAM"  # ... or the embedded default's model servers
SHADOW_RATE_ENV = "LADDER_SHADOW_RATE"  # ... and `--shadow-rate`
log = logging.getLogger("ladder.server")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 503, 504)}


def _error(status: int, message: str, code: str | None = None, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, status, code, param), status, headers=headers)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length up front and by
    counting for chunked bodies, before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.REJECTED.labels("too_large").inc()
        response = _error(413, f"request body larger than {self.limit} bytes",
                          "request_too_large")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _until_disconnect(request: Request, work: Awaitable[Any]) -> Any:
    """Run `work` unless the client goes away first; then cancel it, which cancels the
    backend calls in flight (their HTTP requests are closed), and answer 499 (nginx's
    "client closed request": nobody reads it, the access log does). Cancelled itself
    (the server stopping), it cancels `work` too rather than leave it running."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        metrics.REJECTED.labels("client_disconnected").inc()
        return Response(status_code=499)
    return task.result()


_BEARER = HTTPBearer(auto_error=False, description="one of the gateway's API keys "
                     "(server.api_keys or $LADDER_API_KEYS); none needed when none is set")


class _Streamed(StreamingResponse):
    """An SSE response that, however it ends (finished, or the client gone, even before
    its first chunk), closes the backend call behind it, has it recorded, and only then
    gives its concurrency slot back."""

    def __init__(self, opened: Opened, release: Callable[[], None]):
        super().__init__(opened.chunks, media_type="text/event-stream",
                         headers={**opened.headers, "cache-control": "no-cache"})
        self.opened, self.release = opened, release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.opened.aclose()
            finally:
                self.release()


async def _caller(request: Request,
                  _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
                  ) -> str | None:
    """The key id of the request's bearer key (401 unless it is one of the gateway's);
    async because FastAPI runs a plain function in a worker thread, a hop per request."""
    return request.app.state.gateway.keys.identify(request.headers.get("authorization"))


Caller = Annotated[str | None, Depends(_caller)]


def create_app(config: Config, store: Store | None = None,
               gateway: Gateway | None = None) -> FastAPI:
    """The gateway app for a config (its database opened here unless a store is given)."""
    if gateway is None:
        if store is None:
            store = Store(config.server.database, config.base_dir)
        gateway = Gateway(config, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = FastAPI(title="ladder gateway", version="1", lifespan=lifespan,
                  description="OpenAI-compatible: cascades of models that climb only as far "
                              "as needed.")
    app.state.gateway = gateway

    async def complete(endpoint: str, request: Request, body: Any, key: str | None) -> Any:
        release: Callable[[], None] | None = gateway.admit()
        try:
            if body.stream:
                opened = await _until_disconnect(request, gateway.stream(endpoint, body, key))
                if isinstance(opened, Response):
                    return opened
                streamed, release = _Streamed(opened, release), None  # it releases the slot
                return streamed
            served = await _until_disconnect(request, gateway.respond(endpoint, body, key))
            if isinstance(served, Response):
                return served
            return JSONResponse(served.body, headers=served.headers)
        finally:
            if release is not None:
                release()

    @app.post("/v1/chat/completions", responses={
        **ERRORS, 200: {"model": ChatCompletion, "content": sse_content(ChatCompletionChunk)}})
    async def chat_completions(body: ChatCompletionRequest, request: Request,
                               key: Caller) -> Any:
        return await complete("chat", request, body, key)

    @app.post("/v1/completions", responses={
        **ERRORS, 200: {"model": Completion, "content": sse_content(CompletionChunk)}})
    async def completions(body: CompletionRequest, request: Request, key: Caller) -> Any:
        return await complete("completions", request, body, key)

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS)
    async def models(key: Caller) -> ModelList:
        now = int(time.time())
        cards = [ModelCard(id=name, created=now, owned_by="ladder")
                 for name in gateway.catalog.names()]
        return ModelList(data=cards)

    @app.post("/v1/feedback", response_model=FeedbackResponse, responses=ERRORS)
    async def feedback(body: FeedbackRequest, key: Caller) -> Any:
        if not await gateway.feedback(body, key):
            ran = "" if body.model is None else f" with a stage of model '{body.model}'"
            return _error(404, f"no response with id '{body.id}'{ran} was served here",
                          "response_not_found", "id" if body.model is None else "model")
        return FeedbackResponse(id=body.id)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        state = await gateway.readiness()
        return JSONResponse(state, 200 if state["ready"] else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        text, kind = metrics.exposition()
        return Response(text, media_type=kind)

    _errors(app)
    app.add_middleware(BodyLimit, limit=config.server.max_body_bytes)
    return app


def _errors(app: FastAPI) -> None:
    """Every failure as an OpenAI error body with its status; never a traceback."""
    handlers: dict[type[Exception], Callable[[Exception], JSONResponse]] = {
        Unauthorized: lambda e: _error(401, str(e), "invalid_api_key",
                                       headers={"www-authenticate": "Bearer"}),
        UnknownModel: lambda e: _error(404, str(e), "model_not_found", "model"),
        ClientError: lambda e: _error(400, str(e), "invalid_request", e.param),
        Overloaded: lambda e: _error(429, str(e), "overloaded",
                                     headers={"retry-after": str(e.retry_after)}),
        Unavailable: lambda e: _error(503, str(e), "unavailable",
                                      headers={"retry-after": str(e.retry_after)}),
        BackendError: lambda e: _error(503, str(e), "backend_failed",
                                       headers={"retry-after": "5"}),
        StoreError: lambda e: _error(503, f"the database is unavailable: {e}",
                                     "database_unavailable", headers={"retry-after": "5"}),
        TimeoutError: lambda e: _error(504, "the request took longer than "
                                       "server.request_timeout_s", "timeout"),
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, lambda request, error, h=handler: h(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, "the body is not valid JSON", "invalid_json")
        first = problems[0] if problems else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        message = "; ".join(
            f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body') or 'body'}: "
            f"{p.get('msg', 'invalid')}" for p in problems[:5])
        return _error(400, message, _problem_code(first.get("type", "")), where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), None, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error in the gateway (logged)", "internal_error")


def _problem_code(kind: str) -> str:
    """OpenAI's error code for a pydantic error type: a value of the wrong JSON type, a
    required field left out, or a value outside what the field allows."""
    if kind == "missing":
        return "missing_required_parameter"
    if kind.endswith("_type") or kind in {"model_type", "model_attributes_type"}:
        return "invalid_type"
    return "invalid_value"


def quiet_client_logs() -> None:
    """httpx logs every backend call at INFO: in a gateway that is a line per rung per
    request, and time spent formatting it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def freeze_heap() -> None:
    """Move everything allocated so far (modules, models, policies: ~230k objects) out of
    the garbage collector's reach. A full collection scans every tracked object, ~200 ms
    on 2 busy cores with the heap unfrozen: a stall of every request in flight, the
    gateway's p99 (docs/benchmarks.md). For the serving process only, once, before it
    serves; a test process that builds many apps should not freeze them all."""
    gc.collect()
    gc.freeze()


def with_shadow_rate(config: Config, rate: float | None) -> Config:
    """The config with its shadow runs' rate set (`ladder serve --shadow-rate`; 0 turns
    them off); unchanged when `rate` is None."""
    shadow = config.server.shadow
    if rate is None or (shadow is None and rate == 0):
        return config
    if shadow is None:
        raise ConfigError("--shadow-rate: the config has no server.shadow section (its judge "
                          "and reference rung) to set the rate of")
    server = config.server.model_copy(update={"shadow": shadow.model_copy(update={"rate": rate})})
    return config.model_copy(update={"server": server})


def app_factory() -> FastAPI:
    """For `uvicorn --factory`: the config named by $LADDER_CONFIG, else the embedded
    default (its models on the servers in $LADDER_UPSTREAM, when set), with the shadow
    rate of $LADDER_SHADOW_RATE when set; the heap frozen (`freeze_heap`)."""
    quiet_client_logs()
    path = os.environ.get(CONFIG_ENV)
    if path:
        config = load_config(path)
    else:
        from ladder.server.default import default_config

        upstream = os.environ.get(UPSTREAM_ENV)
        config = default_config(upstream=upstream.split(",") if upstream else None)
    rate = os.environ.get(SHADOW_RATE_ENV)
    app = create_app(with_shadow_rate(config, None if rate is None else float(rate)))
    freeze_heap()
    return app
