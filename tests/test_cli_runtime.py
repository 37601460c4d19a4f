"""`ladder collect` and `ladder fit` end to end on fake models, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ladder.cli import app
from ladder.policies.persist import load_policy
from ladder.runtime import Cascade
from ladder.tasks import builtin_tasks

runner = CliRunner()


def said(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    tasks = tmp_path / "tasks.jsonl"
    items = builtin_tasks()[:120]
    tasks.write_text("".join(
        json.dumps({"id": i.id, "prompt": i.prompt, "type": "choice", "options": list(i.options),
                    "reference": i.reference, "split": ["train", "test"][k % 2]}) + "\n"
        for k, i in enumerate(items)))
    config = tmp_path / "ladder.yaml"
    config.write_text(
        "models:\n"
        "  - {name: small, backend: fake, skill: 0.5, seed: 1, tasks: tasks.jsonl,\n"
        "     price: {per_call: 1.0}}\n"
        "  - {name: large, backend: fake, skill: 0.9, seed: 2, tasks: tasks.jsonl,\n"
        "     price: {per_call: 4.0}}\n"
        "policy: policy.json\n"
        "task: {type: choice}\n")
    return tasks, config


def test_collect_fit_and_decode_from_the_cli(setup, tmp_path: Path) -> None:
    tasks, config = setup
    log = tmp_path / "log.jsonl"
    first = runner.invoke(app, ["collect", str(tasks), "--config", str(config), "-o", str(log)])
    assert first.exit_code == 0, first.output
    assert "wrote 240 rows" in said(first)
    again = runner.invoke(app, ["collect", str(tasks), "-c", str(config), "-o", str(log)])
    assert again.exit_code == 0 and "wrote 0 rows" in said(again)
    assert "240 already there" in said(again)
    result = runner.invoke(app, ["fit", str(log), "--policy", "dp", "--lambda", "0.05",
                                 "--split", "train", "-o", str(tmp_path / "policy.json")])
    assert result.exit_code == 0, result.output
    assert "on 60 queries" in said(result)
    policy = load_policy(tmp_path / "policy.json")
    assert policy.family == "dp" and policy.inputs_ == ("prompt", "answers")
    item = builtin_tasks()[1]
    with Cascade.from_config(config) as cascade:
        decoded = cascade.decode(item)
    assert decoded.answer in item.options and decoded.model in ("small", "large")


@pytest.mark.parametrize(("args", "message"), [
    (["collect", "nope.jsonl", "-c", "ladder.yaml", "-o", "x.jsonl"], "cannot read task file"),
    (["collect", "builtin", "-c", "missing.yaml", "-o", "x.jsonl"], "cannot read config"),
    (["collect", "builtin", "-c", "ladder.yaml", "-o", "x.csv"], ".jsonl output path"),
    (["collect", "builtin", "-c", "ladder.yaml", "--models", "huge", "-o", "x.jsonl"],
     "'huge' is not in the config"),
    (["fit", "missing.jsonl", "-o", "p.json"], "missing.jsonl"),
])
def test_cli_errors_exit_2_without_traceback(setup, tmp_path: Path, monkeypatch, args,
                                             message) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in said(result) and "Traceback" not in result.output


def test_fit_rejects_bad_policy_lambda_and_split(setup, tmp_path: Path) -> None:
    tasks, config = setup
    log = tmp_path / "log.jsonl"
    runner.invoke(app, ["collect", str(tasks), "-c", str(config), "-o", str(log)])
    out = str(tmp_path / "p.json")
    for args, message in (
        (["--policy", "magic"], "unknown policy"),
        (["--lambda", "-1"], "λ must be a finite number ≥ 0"),
        (["--split", "dev"], "--split dev"),
        (["--policy", "dp", "--chain", "small,huge"], "huge"),
        (["--chain", "small,large"], "auto chooses its own"),
    ):
        result = runner.invoke(app, ["fit", str(log), "-o", out, *args])
        assert result.exit_code == 2 and message in said(result), result.output


def test_missing_local_extra_is_explained(tmp_path: Path, monkeypatch) -> None:
    """Without llama-cpp-python the message names the extra to install (rich markup must not
    eat the '[local]')."""
    import sys

    from ladder.backends.llamacpp import _llama_class

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp → ImportError
    _llama_class.cache_clear()  # an earlier test may have imported it already
    config = tmp_path / "local.yaml"
    config.write_text("models:\n  - {name: a, backend: llamacpp, model: smollm2-135m}\n")
    result = runner.invoke(app, ["collect", "builtin", "-c", str(config),
                                 "-o", str(tmp_path / "log.jsonl")])
    assert result.exit_code == 2, result.output
    assert "pip install 'ladder[local]'" in said(result)


@pytest.mark.parametrize("family", ["router", "routed"])
def test_fit_router_families_and_decode_live(setup, tmp_path: Path, family: str) -> None:
    tasks, config = setup
    log = tmp_path / "log.jsonl"
    runner.invoke(app, ["collect", str(tasks), "-c", str(config), "-o", str(log)])
    result = runner.invoke(app, ["fit", str(log), "--policy", family, "--lambda", "0.05",
                                 "-o", str(tmp_path / "policy.json")])
    assert result.exit_code == 0, result.output
    assert load_policy(tmp_path / "policy.json").family == family
    item = builtin_tasks()[1]
    with Cascade.from_config(config) as cascade:
        decoded = cascade.decode(item)
    assert decoded.answer in item.options and decoded.model in ("small", "large")
    if family == "router":
        assert decoded.route["start"] == decoded.model and decoded.stage == 0


def test_fit_moa_without_a_cheap_layer_is_a_clear_error(setup, tmp_path: Path) -> None:
    tasks, config = setup
    log = tmp_path / "log.jsonl"
    runner.invoke(app, ["collect", str(tasks), "-c", str(config), "-o", str(log)])
    result = runner.invoke(app, ["fit", str(log), "--policy", "moa", "-o", str(tmp_path / "p")])
    assert result.exit_code == 2 and "no cheap layer" in said(result), result.output
    assert "Traceback" not in result.output
