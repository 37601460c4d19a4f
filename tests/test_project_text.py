"""The project's own text names what a thing is, never the work item that made it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".tex", ".json", ".yaml", ".yml", ".toml", ".txt", ".cfg", "")
WORK_ITEM = re.compile(r"\bissue[\s_-]*#?\d+", re.IGNORECASE)


def _project_files() -> list[Path]:
    roots = [ROOT / name for name in ("src", "docs", "tests", "bench", "examples", ".ci")]
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for root in roots:
        files += [p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT
                  and "__pycache__" not in p.parts]
    return files


def test_no_file_names_a_work_item() -> None:
    found = []
    for path in _project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in WORK_ITEM.finditer(text)]
    assert not found, "\n".join(found)


def test_every_install_command_builds_llama_cpp_portably() -> None:
    """The README's commands and CI compile llama.cpp for the same fixed instruction set
    (`ladder.backends.build.PORTABLE_CMAKE_ARGS`), so every machine runs the same kernels."""
    from ladder.backends.build import PORTABLE_CMAKE_ARGS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    installs = [line for line in readme.splitlines() if "pip install -e '.[" in line
                and line.startswith("python3 -m venv")]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(installs) == 3 and len(ci) == 1
    for line in installs + ci:
        assert f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}"' in line, line
