"""The OpenAI wire format the gateway speaks, as pydantic models (they are also the schema
that `/openapi.json` publishes and that the fuzz test drives).

Requests accept the fields OpenAI clients send and ignore unknown ones (clients add new
fields faster than gateways learn them); what the gateway cannot honour (`n > 1`, tools)
is refused with a 400 by the serving logic, not silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LADDER = "ladder"  # the model name of the default policy


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0, le=2)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    def stop_list(self) -> tuple[str, ...] | None:
        if self.stop is None:
            return None
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(s for s in stops if s) or None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(max_length=1_000_000)

    def text(self) -> str | None:
        """The one prompt of the request (None when it holds several)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt[0] if len(self.prompt) == 1 else None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, description="the id of a served response")
    quality: float = Field(ge=0, le=1, description="the answer's quality: 1 right, 0 wrong")


class FeedbackResponse(BaseModel):
    id: str
    recorded: bool = True


class StageReport(BaseModel):
    """One rung the cascade ran for a request."""

    model: str
    decision: Literal["stop", "escalate", "failed"]
    predicted_quality: float | None
    cost: float
    latency_ms: float
    error: str | None = None


class LadderReport(BaseModel):
    """What the cascade did, beside the OpenAI fields of a response."""

    policy: str
    stages: list[StageReport]
    cost: float
    saved: float = Field(description="estimated cost of the top rung alone, minus cost")
    top_model: str | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_body(message: str, status: int, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """An OpenAI-format error: the type follows the status as OpenAI's API does."""
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error",
            503: "service_unavailable"}.get(status, "invalid_request_error")
    if status >= 500 and status != 503:
        kind = "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
