"""Bearer API keys: compared in constant time, identified in logs only by a digest prefix.

Keys come from the config's `server.api_keys` and from `$LADDER_API_KEYS` (comma-separated).
With none configured the gateway is open (fine on loopback; `ladder serve` warns otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

KEYS_ENV = "LADDER_API_KEYS"


class Unauthorized(PermissionError):
    """No key, or a key that is not one of the gateway's (401)."""


def key_id(key: str) -> str:
    """What the store and the metrics know of a key: a short digest, not the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeys:
    def __init__(self, keys: Iterable[str] = (), env: bool = True):
        found = [k.strip() for k in keys]
        if env:
            found += [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",")]
        self._digests = {hashlib.sha256(k.encode()).digest(): key_id(k) for k in found if k}

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:  # never the keys
        return f"ApiKeys({len(self._digests)} keys)"

    def identify(self, authorization: str | None) -> str | None:
        """The key id of an `Authorization: Bearer …` header (None when keys are off).
        Every stored digest is compared, so the time taken says nothing about which or
        how much of a key matched."""
        if not self.enabled:
            return None
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("missing bearer API key: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(presented.strip().encode()).digest()
        found = None
        for stored, ident in self._digests.items():
            if hmac.compare_digest(stored, digest):
                found = ident
        if found is None:
            raise Unauthorized("invalid API key")
        return found
