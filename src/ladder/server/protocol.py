"""The OpenAI wire format the gateway speaks, as pydantic models (they are also the schema
that `/openapi.json` publishes and that the fuzz test drives).

Requests accept the fields OpenAI clients send and ignore unknown ones (clients add new
fields faster than gateways learn them); what the gateway cannot honour (`n > 1`) is
refused with a 400 by the serving logic, not silently dropped. Every field OpenAI types is
validated strictly, as OpenAI does: `"stream": "yes"` or `"max_tokens": "5"` is a 400, not
coerced (numbers may be given as integers).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

LADDER = "ladder"  # the model name of the default policy


class _Lenient(BaseModel):
    """Unknown fields kept and ignored; known ones strictly typed (no "yes" for true, no "5"
    for 5), except that a whole float is the integer it is (JSON Schema's `integer` admits
    5.0)."""

    model_config = ConfigDict(extra="allow", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _whole_floats(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[info.field_name]
        wants_int = field.annotation in (int, int | None)
        if wants_int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value


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
    n: int = Field(1, ge=1, le=128, json_schema_extra={"maximum": 1},
                   description="only 1: the gateway returns one answer (400 otherwise)")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # typed by OpenAI and validated as it does, though the gateway does not act on them
    top_p: float | None = Field(None, ge=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None

    def stop_list(self) -> tuple[str, ...] | None:
        if self.stop is None:
            return None
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(s for s in stops if s) or None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(max_length=1_000_000, json_schema_extra={
        "minItems": 1, "maxItems": 1}, description="one prompt (a list of several is 400)")
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(None, ge=0, le=20)
    suffix: str | None = None

    def text(self) -> str | None:
        """The one prompt of the request (None when it holds several)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt[0] if len(self.prompt) == 1 else None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=128, description="the id of a served response")
    quality: float = Field(ge=0, le=1, description="the answer's quality: 1 right, 0 wrong")
    model: str | None = Field(None, min_length=1, max_length=256,
                              description="label this stage's answer (a model the request "
                                          "ran, see ladder.stages) instead of the answer "
                                          "returned")


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
    answer: str | None = Field(None, description="the answer this stage extracted (what "
                                                 "feedback naming its model labels)")
    error: str | None = None


class LadderReport(BaseModel):
    """What the cascade did, beside the OpenAI fields of a response."""

    policy: str
    stages: list[StageReport]
    cost: float
    saved: float = Field(description="estimated cost of the top rung alone, minus cost")
    top_model: str | None


class FallbackStage(BaseModel):
    """A pass-through model that failed before the one that answered."""

    model: str
    error: str | None


class FallbackReport(BaseModel):
    """A pass-through that fell back: which models failed first, and why."""

    policy: str
    fallback: list[FallbackStage]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class _Completion(BaseModel):
    id: str
    created: int
    model: str = Field(description="the model that answered")
    usage: Usage
    ladder: LadderReport | FallbackReport | None = None


class ChatCompletion(_Completion):
    """A whole chat answer (with `stream`, `text/event-stream` chunks instead)."""

    object: Literal["chat.completion"]
    choices: list[ChatChoice]


class Completion(_Completion):
    """A whole text completion (with `stream`, `text/event-stream` chunks instead)."""

    object: Literal["text_completion"]
    choices: list[TextChoice]


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class _Chunk(BaseModel):
    id: str
    created: int
    model: str
    usage: Usage | None = Field(None, description="the last chunk, with include_usage")
    ladder: LadderReport | None = Field(None, description="the finishing chunk of a cascade")


class ChatCompletionChunk(_Chunk):
    object: Literal["chat.completion.chunk"]
    choices: list[ChatChunkChoice]


class CompletionChunk(_Chunk):
    object: Literal["text_completion"]
    choices: list[TextChoice]


def sse_content(chunk: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI content of a stream of `chunk`s: each event's data is a chunk, an error
    (a failure after the first byte) or `[DONE]` (OpenAPI < 3.2: the schema is one
    event's)."""
    data = TypeAdapter(chunk | ErrorResponse).json_schema()
    definitions = data.pop("$defs", {})
    event = {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": _inline(data, definitions)}]}}}
    return {"text/event-stream": {"schema": event}}


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` with its local `$ref`s replaced by their definitions (it is embedded
    where `#/$defs` would not resolve)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, definitions) for v in schema]
    return schema


class Readiness(BaseModel):
    """/readyz: ready once every policy is loaded and the database answers."""

    ready: bool
    pending: list[str]
    errors: dict[str, str]
    database: bool
    breakers: dict[str, str]


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
