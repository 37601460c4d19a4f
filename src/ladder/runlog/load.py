"""Loading any supported layout as a validated run log.

Its own module, above both the file readers (`io`) and the converters that use them, so
neither has to import the other back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ladder.runlog.converters import convert
from ladder.runlog.schema import validate_runlog


def load_runlog(path: str | Path, format: str = "auto") -> pd.DataFrame:
    """Read any supported layout, convert it to the run-log format and validate it."""
    return validate_runlog(convert(Path(path), format))
