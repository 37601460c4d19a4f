"""`python -m ladder ...` is the `ladder` command (for subprocesses of a given interpreter)."""

from ladder.cli import main

main()
