"""The real embedded models, in process and behind llama-cpp-python's own OpenAI-compatible
server on loopback (slow: each model call is real; skipped without the `local` extra)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="needs the local extra: pip install -e '.[local]'")

from ladder.backends.base import DEFAULT_TEMPLATE
from ladder.backends.embedded import embedded_path
from ladder.backends.llamacpp import LlamaCppBackend
from ladder.backends.openai import OpenAIBackend
from ladder.collect import collect
from ladder.config import load_config
from ladder.demo import demo_items
from ladder.fit import fit_policy
from ladder.policies.persist import save_policy
from ladder.rung import rungs_from_config
from ladder.runlog import QueryTable, load_runlog
from ladder.runtime import Cascade
from ladder.server.upstream import server_command, wait_for_port
from ladder.tasks import builtin_tasks

pytestmark = pytest.mark.slow

ITEMS = builtin_tasks()[:4]


@pytest.fixture(scope="module")
def gemma() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend("gemma3-270m")
    yield backend
    asyncio.run(backend.aclose())


def test_option_logprobs_equal_llama_cpp_own_logprobs(gemma: LlamaCppBackend) -> None:
    """Our numpy log-softmax of the logits gives the log-probabilities llama-cpp-python's
    (slow) `logprobs=` computes, token by token. Gemma, because llama-cpp-python's echoed
    logprobs are shifted by one token for models without a BOS token such as SmolLM2
    (its `_create_completion` drops BOS from the tokens but not from the logit rows)."""
    from llama_cpp import Llama

    from ladder.backends.llamacpp import use_plain_weight_buffers

    use_plain_weight_buffers()  # as ladder's backend loads models (AMX repack can crash)
    reference = Llama(str(embedded_path("gemma3-270m")), n_ctx=512, logits_all=True,
                      verbose=False)
    item = ITEMS[0]
    prompt = DEFAULT_TEMPLATE.format(prompt=item.prompt)
    ours = asyncio.run(gemma.score_options(prompt, item.options))
    # one option: their logprobs sort Gemma's 262k-token vocabulary in Python per token
    option, token_logprobs = item.options[1], ours.token_logprobs[1]
    full = reference.create_completion(f"{prompt} {option}", max_tokens=1, echo=True,
                                       logprobs=1, temperature=0)
    theirs = full["choices"][0]["logprobs"]["token_logprobs"]
    n = len(token_logprobs)
    # the echoed prompt is followed by one generated token
    np.testing.assert_allclose(token_logprobs, theirs[-1 - n:-1], atol=2e-3)
    reference.close()


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_embedded_models_answer_builtin_items(model: str) -> None:
    backend = LlamaCppBackend(model)
    try:
        outputs = [asyncio.run(backend.answer(item)) for item in ITEMS]
    finally:
        asyncio.run(backend.aclose())
    for item, output in zip(ITEMS, outputs, strict=True):
        assert output.answer in item.options
        assert 1 / len(item.options) <= output.confidence <= 1
        assert 0 <= output.margin <= output.confidence and 0 <= output.entropy <= 1
        assert output.logprob_min <= output.logprob_mean <= 0
        assert output.tokens_in > 0 and output.latency_s > 0


def test_gemma_generates_a_short_answer_with_logprobs() -> None:
    backend = LlamaCppBackend("gemma3-270m")
    try:
        generation = asyncio.run(backend.generate(
            "Question: What is the capital of France?\nAnswer:", max_tokens=8))
    finally:
        asyncio.run(backend.aclose())
    assert "Paris" in generation.text
    assert len(generation.token_logprobs) == generation.usage.tokens_out >= 1
    assert all(lp <= 0 for lp in generation.token_logprobs)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with Gemma on a loopback port (its echoed
    prompt logprobs are aligned for models with a BOS token only, see above)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(server_command("gemma3-270m", "127.0.0.1", port, alias="gemma"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, process, timeout_s=120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_server_scores_options_like_the_in_process_model(server: str,
                                                         gemma: LlamaCppBackend) -> None:
    """Two items only: llama-cpp-python's server sorts Gemma's whole vocabulary in Python for
    every echoed token (this test, 8 option requests, took 100 s on 2 cores)."""
    remote = OpenAIBackend(server, "gemma", timeout_s=300)
    for item in ITEMS[:2]:
        prompt = DEFAULT_TEMPLATE.format(prompt=item.prompt)
        local = asyncio.run(gemma.score_options(prompt, item.options))
        served = asyncio.run(remote.score_options(prompt, item.options))
        np.testing.assert_allclose(served.totals(), local.totals(), atol=0.05)
        assert np.argmax(served.totals()) == np.argmax(local.totals())
    generation = asyncio.run(remote.generate(
        "Question: What is the capital of France?\nAnswer:", max_tokens=8))
    assert "Paris" in generation.text and generation.usage.tokens_in > 0
    asyncio.run(remote.aclose())


CONFIG = """models:
  - {{name: smollm2, backend: llamacpp, model: smollm2-135m, price: {{input_per_mtok: 0.135}}}}
  - {gemma}
policy: policy.json
task: {{type: choice}}
"""
GEMMA_IN_PROCESS = "{name: gemma, backend: llamacpp, model: gemma3-270m, " \
    "price: {input_per_mtok: 0.27}}"


def test_live_cascade_over_server_and_in_process(server: str, tmp_path: Path) -> None:
    """The whole stack on real models: collect in process, fit, save, then decode from a
    YAML config whose first rung is SmolLM2 in process and second Gemma behind the server."""
    collect_config = tmp_path / "collect.yaml"
    collect_config.write_text(CONFIG.format(gemma=GEMMA_IN_PROCESS))
    items = demo_items(limit=40)  # a seeded mix of every domain
    collect(items, rungs_from_config(load_config(collect_config)), tmp_path / "log.jsonl")
    table = QueryTable.from_runlog(load_runlog(tmp_path / "log.jsonl"))
    assert table.n == 40 and table.models == ("smollm2", "gemma")
    policy = fit_policy(table, "threshold", lam=0.0, chain=["smollm2", "gemma"])
    # an operating point that splits the log made here on any CPU: stop where SmolLM2's
    # predicted quality reaches the median of its distinct values, escalate below
    first = np.unique(policy.step(table, 0).scores[:, 0])
    assert len(first) >= 2, "SmolLM2's predicted quality should vary across 40 items"
    policy.thresholds_[0] = float(np.median(first))
    save_policy(policy, tmp_path / "policy.json")
    offline = policy.replay(table)
    row = {q: k for k, q in enumerate(table.query_ids)}
    logged = load_runlog(tmp_path / "log.jsonl").set_index(["query_id", "model"])["answer"]
    live_config = tmp_path / "live.yaml"
    live_config.write_text(CONFIG.format(
        gemma=f"{{name: gemma, backend: openai, base_url: '{server}', model: gemma, "
              "timeout_s: 300, price: {input_per_mtok: 0.27}}"))
    # one item the policy escalates to the server and one it stops on, when both exist
    escalated = [i for i in items if offline.last_run[row[i.id]] == 1]
    stopped = [i for i in items if offline.last_run[row[i.id]] == 0]
    assert escalated and stopped
    chosen = escalated[:1] + stopped[:1]
    with Cascade.from_config(live_config) as cascade:
        results = cascade.decode_many(chosen, progress=False)
    assert results[0].trace[-1].model == "gemma"
    for item, result in zip(chosen, results, strict=True):
        k = row[item.id]
        assert result.trace[0].model == "smollm2"
        assert result.trace[-1].model == table.models[offline.last_run[k]]
        for rung in result.trace:  # the server's answers equal the in-process ones
            assert rung.answer == logged[(item.id, rung.model)]
        assert result.answer in item.options


def test_demo_command_end_to_end(tmp_path: Path) -> None:
    """The README's first command, on 40 built-in items (20 to fit on, 20 decoded live)."""
    from typer.testing import CliRunner

    from ladder.cli import app

    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--limit", "40"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "cascade (auto, live)" in text and "oracle" in text and "pyramid MoA" in text
    assert "quality above the line between the two models" in text
    assert "replay of the logged outputs: 20/20" in text
    for name in ("report.md", "frontier.png", "policy.json", "runlog.jsonl"):
        assert (out / name).is_file()
    assert "## Live cascade" in (out / "report.md").read_text()
    # both models on every item, SmolLM2's second template on the 20 train items
    assert len((out / "runlog.jsonl").read_text().splitlines()) == 100


def test_concurrent_loads_leave_the_process_output_alone() -> None:
    """Two models loading in two threads at once (a pyramid's layer 1, SmolLM2 under two
    templates, starting) must not leave sys.stdout / sys.stderr or fd 2 pointing at
    /dev/null afterwards (it did 2 times in 3 before loads were serialised)."""
    stdout, stderr, fd2 = sys.stdout, sys.stderr, os.readlink("/proc/self/fd/2")
    backends = [LlamaCppBackend("smollm2-135m"), LlamaCppBackend("smollm2-135m")]

    async def both() -> None:
        item = ITEMS[0]
        await asyncio.gather(*(b.score_options(item.prompt, item.options) for b in backends))

    asyncio.run(both())
    assert sys.stdout is stdout and sys.stderr is stderr
    assert os.readlink("/proc/self/fd/2") == fd2
    for backend in backends:
        asyncio.run(backend.aclose())
