"""One guard for every converter: a file it cannot read is a RunLogError, not a traceback.

Parsers fail in many ways on a wrong file (a CSV given as JSON lines, a truncated gzip, a
record without an expected field); each converter is wrapped once here instead of catching
them at every read.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import pandas as pd

from ladder.runlog.schema import RunLogError

P = ParamSpec("P")
# What pandas, pyarrow, json and gzip raise on input of the wrong shape or encoding.
_UNREADABLE = (OSError, ValueError, TypeError, AttributeError, IndexError, EOFError, zlib.error)


def layout_reader(layout: str) -> Callable[[Callable[P, pd.DataFrame]],
                                           Callable[P, pd.DataFrame]]:
    """Wrap a converter `f(path, ...)` so that a path it cannot read raises RunLogError
    naming the path and `layout` (what the converter expected)."""

    def wrap(convert: Callable[P, pd.DataFrame]) -> Callable[P, pd.DataFrame]:
        @functools.wraps(convert)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> pd.DataFrame:
            path = Path(args[0]) if args else kwargs.get("path")
            try:
                return convert(*args, **kwargs)
            except RunLogError:
                raise
            except KeyError as error:
                raise RunLogError(f"{path}: not {layout}; it has no field {error}") from None
            except _UNREADABLE as error:
                raise RunLogError(f"{path}: cannot be read as {layout} "
                                  f"({type(error).__name__}: {error})") from None

        return guarded

    return wrap
