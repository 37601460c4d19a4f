"""What the serving logic raises for the app to turn into OpenAI error bodies: one class
per status, so an unexpected exception stays a logged 500 instead of passing for a client
mistake."""

from __future__ import annotations


class ClientError(ValueError):
    """A request the gateway will not run (400), with the parameter at fault."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class UnknownModel(LookupError):
    """A request named no policy, override or model this gateway serves (404)."""


class Unavailable(RuntimeError):
    """Not ready, or every model failed (503); `retry_after` seconds to wait."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """More requests in flight than `server.max_concurrency` (429)."""
