"""The run log: ladder's one input format (see docs/runlog.md)."""

from ladder.runlog.io import read_runlog, write_runlog
from ladder.runlog.load import load_runlog
from ladder.runlog.schema import RunLogError, validate_runlog
from ladder.runlog.table import QueryTable

__all__ = [
    "QueryTable",
    "RunLogError",
    "load_runlog",
    "read_runlog",
    "validate_runlog",
    "write_runlog",
]
