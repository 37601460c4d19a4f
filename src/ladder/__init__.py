"""ladder: climb a ladder of LLMs only as far as needed."""

from ladder.runlog import QueryTable, RunLogError, load_runlog, read_runlog, validate_runlog
from ladder.runtime import Cascade, Result
from ladder.tasks import Item

__all__ = ["Cascade", "Item", "QueryTable", "Result", "RunLogError", "load_runlog",
           "read_runlog", "validate_runlog"]
__version__ = "0.1.0"
