"""Which llama.cpp build runs the embedded models, and on which CPU.

Greedy decoding is deterministic for one build on one CPU, not across them: kernels compiled
for AVX-512 round differently from AVX2 ones, so the same weights can give another answer on
another machine. What ladder logs from a model is therefore tagged with the build that made
it (`LlamaBuild`), and a cache of model outputs is reused only under the same build.

The README's install compiles llama.cpp for a fixed instruction set (AVX2, FMA, F16C,
`GGML_NATIVE=OFF`) so that every x86-64 machine of ours runs the same kernels;
`pip install ladder[local]` without those flags compiles for the host's own CPU, which is
faster on AVX-512 machines and still correct, only not reproducible elsewhere.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from ladder.backends.base import BackendError
from ladder.backends.embedded import INSTALL_HINT

# the compile-time CPU features llama.cpp reports that change which kernels run
_KERNEL_FEATURES = re.compile(r"^(AVX\w*|FMA|F16C|AMX\w*|SSE\w*|SSSE3|BMI2|LLAMAFILE)$")
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


@dataclass(frozen=True)
class LlamaBuild:
    """A llama.cpp build on a CPU: what a model output is reproducible under."""

    llama_cpp_python: str
    features: tuple[str, ...]  # instruction sets compiled in, e.g. ("AVX", "AVX2", "FMA")
    cpu: str

    @property
    def instruction_set(self) -> str:
        """The widest vector extension compiled in: AVX512, AVX2, AVX or none."""
        return next((f for f in ("AVX512", "AVX2", "AVX") if f in self.features), "none")

    def describe(self) -> str:
        return (f"llama-cpp-python {self.llama_cpp_python} built for "
                f"{self.instruction_set}, on {self.cpu}")

    def to_dict(self) -> dict:
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, data: dict) -> LlamaBuild:
        return cls(str(data["llama_cpp_python"]), tuple(data["features"]), str(data["cpu"]))


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def compiled_features(system_info: str) -> tuple[str, ...]:
    """The CPU features `llama_print_system_info()` reports as compiled in ("AVX2 = 1")."""
    found = re.findall(r"([A-Z0-9_]+)\s*=\s*1", system_info)
    return tuple(sorted({f for f in found if _KERNEL_FEATURES.match(f)}))


def llama_cpp_module() -> ModuleType:
    """llama_cpp, imported on first use (the local extra is optional)."""
    try:
        import llama_cpp
    except ImportError:
        raise BackendError(f"the llamacpp backend needs llama-cpp-python; {INSTALL_HINT}") \
            from None
    return llama_cpp


@cache
def llama_build() -> LlamaBuild:
    """The llama.cpp build this process loads the embedded models with."""
    llama_cpp = llama_cpp_module()
    info = llama_cpp.llama_print_system_info()
    info = info.decode() if isinstance(info, bytes) else str(info)
    return LlamaBuild(llama_cpp.__version__, compiled_features(info), cpu_name())


def sidecar(log: Path) -> Path:
    """Where the build that made a run log's model outputs is recorded: beside it, its
    name less the log's extensions plus `.build.json`."""
    name = log.name
    for extension in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
        name = name.removesuffix(extension)
    return log.with_name(name + ".build.json")


def write_build(log: Path, build: LlamaBuild) -> Path:
    path = sidecar(log)
    path.write_text(json.dumps(build.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def read_build(log: Path) -> LlamaBuild | None:
    """The build recorded beside `log`, or None when none was (or it is unreadable)."""
    try:
        return LlamaBuild.from_dict(json.loads(sidecar(log).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
