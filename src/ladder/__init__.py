"""ladder: climb a ladder of LLMs only as far as needed."""

from ladder.runlog import QueryTable, RunLogError, load_runlog, read_runlog, validate_runlog

__all__ = ["QueryTable", "RunLogError", "load_runlog", "read_runlog", "validate_runlog"]
__version__ = "0.1.0"
