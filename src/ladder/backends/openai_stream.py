"""Server-sent events of an OpenAI-compatible stream, read into text deltas and usage.

An error before the first delta is a BackendError (nothing went out: the caller may fall
back to another model); after it, a StreamBroken (the client already has part of a text).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ladder.backends.base import BackendError, StreamBroken, Usage


def _delta(chunk: dict[str, Any], chat: bool) -> str:
    """A chunk's text: choices[0].delta.content (chat) or choices[0].text; "" for a chunk
    without choices (the usage chunk)."""
    choices = chunk["choices"]
    if not choices:
        return ""
    if chat:
        return choices[0].get("delta", {}).get("content") or ""
    return choices[0].get("text") or ""


async def sse_deltas(response: httpx.Response, chat: bool, start: float,
                     fail: Callable[[str], str], timed_out: str
                     ) -> AsyncIterator[str | Usage]:
    """The text deltas of `response`, then its Usage (counted deltas where the server sends
    no usage). `fail` turns what went wrong into the backend's message."""
    deltas = 0
    usage: dict[str, Any] = {}
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            usage = chunk.get("usage") or usage
            text = _delta(chunk, chat)
            if text:
                deltas += 1
                yield text
    except httpx.TimeoutException:
        raise _error(deltas, fail(f"stream {timed_out}")) from None
    except httpx.TransportError as error:
        raise _error(deltas, fail(f"stream broke ({type(error).__name__})")) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise _error(deltas, fail(f"gave a malformed stream chunk "
                                  f"({type(error).__name__}: {error})")) from None
    yield Usage(int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or deltas), time.perf_counter() - start)


def _error(deltas: int, message: str) -> BackendError:
    return StreamBroken(message) if deltas else BackendError(message)
