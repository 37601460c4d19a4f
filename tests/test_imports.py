"""Package structure: no import cycles (counting imports inside functions, which hide them),
and the public import paths the README shows work in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_names() -> dict[str, Path]:
    names = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _import_graph() -> dict[str, set[str]]:
    """Module → ladder modules it imports anywhere in its body (top level or in a function).

    `from pkg import name` counts as importing `pkg.name` when that is a module, else `pkg`.
    A submodule's implicit import of its parent package is not an edge (every package would
    then be a cycle with its own __init__).
    """
    modules = _module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_cycle_between_ladder_modules():
    graph = _import_graph()
    assert "ladder.runlog.converters" in graph  # the walk found the package
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_find_cycle_sees_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("statement", [
    "from ladder.runlog import load_runlog, read_runlog, write_runlog",
    "import ladder.runlog.converters.routerbench, ladder.runlog.io",
    "from ladder.policies import (FixedModel, RandomMix, Oracle, ThresholdCascade, DPCascade, "
    "BestChain, SeedHeuristic, save_policy, load_policy)",
    "import ladder.policies.persist",
])
def test_public_imports_in_a_fresh_interpreter(statement):
    env = {"PYTHONPATH": str(SRC), "PATH": ""}
    done = subprocess.run([sys.executable, "-c", statement], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
