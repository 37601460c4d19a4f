"""The experiments of issue 9, one module each, on real logs (theory.md §6–§8)."""
