"""Shared fixtures: the real logs beside the checkout, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real logs not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA
