"""The llama.cpp build a model output was made under: parsed, recorded beside a log, and a
cache of outputs reused only under the same build."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladder.backends.build import (
    LlamaBuild,
    compiled_features,
    cpu_name,
    read_build,
    sidecar,
    write_build,
)
from ladder.demo import reuse_only_under

NATIVE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
          "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | "
          "OPENMP = 1 | REPACK = 1 | ")
PORTABLE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")


def _build(info: str, cpu: str = "AMD EPYC") -> LlamaBuild:
    return LlamaBuild("0.3.36", compiled_features(info), cpu)


def test_the_instruction_set_is_read_from_llama_cpp_system_info() -> None:
    native, portable = _build(NATIVE), _build(PORTABLE)
    assert native.instruction_set == "AVX512" and portable.instruction_set == "AVX2"
    assert "OPENMP" not in portable.features and "REPACK" not in portable.features
    assert "AVX512_VNNI" in native.features and native != portable
    assert _build("CPU : SSE3 = 1 | AVX = 0 | ").instruction_set == "none"
    assert portable.describe() == "llama-cpp-python 0.3.36 built for AVX2, on AMD EPYC"
    assert cpu_name()


@pytest.mark.parametrize(("log", "recorded"), [
    ("runlog.jsonl", "runlog.build.json"),
    ("builtin-free-text.jsonl.gz", "builtin-free-text.build.json"),
    ("runlog.old1.jsonl", "runlog.old1.build.json"),
    ("log.parquet", "log.build.json")])
def test_the_build_is_recorded_beside_the_log(tmp_path: Path, log: str, recorded: str) -> None:
    assert sidecar(tmp_path / log) == tmp_path / recorded
    assert read_build(tmp_path / log) is None
    write_build(tmp_path / log, _build(NATIVE))
    assert read_build(tmp_path / log) == _build(NATIVE)
    (tmp_path / recorded).write_text("{not json")
    assert read_build(tmp_path / log) is None


def test_a_log_of_another_build_is_set_aside_not_resumed(tmp_path: Path) -> None:
    log = tmp_path / "runlog.jsonl"
    assert reuse_only_under(log, _build(PORTABLE)) is None  # nothing yet: recorded
    log.write_text('{"row": 1}\n')
    assert reuse_only_under(log, _build(PORTABLE)) is None and log.exists()  # same: resumed
    moved = reuse_only_under(log, _build(NATIVE))  # another build: kept aside
    assert moved == tmp_path / "runlog.old1.jsonl" and moved.read_text() == '{"row": 1}\n'
    assert not log.exists() and read_build(moved) == _build(PORTABLE)
    assert read_build(log) == _build(NATIVE)
    log.write_text('{"row": 2}\n')
    assert reuse_only_under(log, _build(NATIVE, cpu="Intel Xeon")) == tmp_path / \
        "runlog.old2.jsonl"  # the same build on another CPU is another build too
    log.write_text('{"row": 3}\n')
    sidecar(log).unlink()  # a log from before builds were recorded: unknown, set aside
    assert reuse_only_under(log, _build(NATIVE)) == tmp_path / "runlog.old3.jsonl"
