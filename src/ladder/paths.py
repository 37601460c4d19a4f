"""Where ladder keeps per-user state (the gateway's database, fitted-policy cache, working
logs): `$LADDER_HOME`, else `~/.local/share/ladder`, never the package's own folder, which
may be read-only."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    home = os.environ.get("LADDER_HOME")
    return Path(home).expanduser() if home else Path.home() / ".local" / "share" / "ladder"
