"""OpenAI response bodies and server-sent-event chunks built from what the gateway ran.

A cascade's answer is known only once its stop decision is made (that decision reads the
whole answer's confidence), so a streamed cascade sends the chosen answer after it; a
pass-through stream relays the model's deltas as they come.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

CHUNK_WORDS = 8  # words per SSE chunk when a finished answer is streamed


def completion_body(rid: str, endpoint: str, model: str, text: str, usage: dict[str, int],
                    ladder: dict[str, Any] | None, created: int | None = None) -> dict[str, Any]:
    """A chat.completion or text_completion object (with the `ladder` report, if any)."""
    created = int(time.time()) if created is None else created
    if endpoint == "chat":
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None,
                                  "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": "stop", "logprobs": None, "text": text}
        kind = "text_completion"
    body = {"id": rid, "object": kind, "created": created, "model": model,
            "choices": [choice], "usage": usage}
    if ladder is not None:
        body["ladder"] = ladder
    return body


def usage_dict(tokens_in: float, tokens_out: float) -> dict[str, int]:
    def count(x: float) -> int:
        return 0 if x != x else int(x)  # NaN: unknown

    prompt, completion = count(tokens_in), count(tokens_out)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


DONE = sse("[DONE]")


class Chunks:
    """The chunks of one streamed response, all with the same id, created and model."""

    def __init__(self, rid: str, endpoint: str, model: str):
        self.rid, self.endpoint, self.model = rid, endpoint, model
        self.created = int(time.time())
        self.kind = "chat.completion.chunk" if endpoint == "chat" else "text_completion"

    def _chunk(self, delta: dict[str, Any] | str, finish: str | None,
               **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if self.endpoint == "chat":
            choice["delta"] = delta
        else:
            choice["text"] = delta if isinstance(delta, str) else delta.get("content", "")
        body = {"id": self.rid, "object": self.kind, "created": self.created,
                "model": self.model, "choices": [choice], **extra}
        return sse(body)

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def text(self, piece: str) -> bytes:
        return self._chunk({"content": piece} if self.endpoint == "chat" else piece, None)

    def finish(self, ladder: dict[str, Any] | None) -> bytes:
        extra = {} if ladder is None else {"ladder": ladder}
        return self._chunk({} if self.endpoint == "chat" else "", "stop", **extra)

    def error(self, message: str) -> bytes:
        """A failure after the first byte: too late for a status code, so the stream ends
        with an OpenAI error object (what OpenAI's own API sends mid-stream)."""
        return sse({"error": {"message": message, "type": "server_error", "param": None,
                              "code": "backend_failed"}})

    def usage(self, usage: dict[str, int]) -> bytes:
        body = {"id": self.rid, "object": self.kind, "created": self.created,
                "model": self.model, "choices": [], "usage": usage}
        return sse(body)


def pieces(text: str, words: int = CHUNK_WORDS) -> Iterator[str]:
    """A finished answer cut into chunks of a few words (whitespace kept, so the client's
    concatenation is the answer exactly)."""
    parts = text.split(" ")
    for start in range(0, len(parts), words):
        piece = " ".join(parts[start:start + words])
        yield piece if start + words >= len(parts) else piece + " "
