"""Two `ladder serve` processes sharing one PostgreSQL database, over loopback HTTP: feedback
sent to one replica changes the other's decisions, both replicas' requests land in the one
database, and killing one leaves the other serving. Then the worked example
(examples/replicas/run.sh: nginx in front of two replicas) on the fake upstream."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import ladder
from gateway_setup import N_ITEMS, gateway_config
from ladder.cli import app
from ladder.runlog import load_runlog
from ladder.server.upstream import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(ladder.__file__).parents[1]
CHAIN = ["small", "big"]
SYNC_S = 0.2


class Replica:
    """`ladder serve` in a subprocess on a free loopback port; its output in `log`."""

    def __init__(self, config: Path, name: str, home: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(SRC), "LADDER_HOME": str(home)}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from ladder.cli import main; main()", "serve",
                 "--config", str(config), "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, deadline_s: float = 60) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"replica exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"replica not ready after {deadline_s} s:\n{self.log.read_text()}")

    def ask(self, prompt: str) -> httpx.Response:
        response = self.client.post("/v1/chat/completions", json={
            "model": "learner", "messages": [{"role": "user", "content": prompt}]})
        assert response.status_code == 200, response.text
        return response

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            stop(self.process)


def climbed(response: httpx.Response) -> list[str]:
    """The models the cascade ran for this response, in order."""
    return [stage["model"] for stage in response.json()["ladder"]["stages"]]


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Replica, Replica, str]]:
    """Replicas A and B of one config: an online policy over the two fakes, warm-started on
    their log (which says the cheap model is right when it is confident), no exploration
    (decisions are deterministic), refitted on the newest 40 requests every 10 labels."""
    config = gateway_config(tmp_path, database=postgres_url, sync_s=SYNC_S, policies=[
        {"name": "learner", "online": {"chain": CHAIN, "lambda": 2000.0,
                                       "warm_start": "log.jsonl", "exploration": 0.0,
                                       "window": 40, "refit_every": 10}}])
    pair = (Replica(config, "a", tmp_path / "home-a"), Replica(config, "b", tmp_path / "home-b"))
    try:
        for replica in pair:
            replica.wait_ready()
        yield pair[0], pair[1], postgres_url
    finally:
        for replica in pair:
            replica.stop()


PROMPTS = [f"What is {k} + {k}?" for k in range(0, N_ITEMS, 3)]


def test_feedback_to_one_replica_changes_the_others_decisions(replicas, tmp_path):
    a, b, database = replicas
    before = {p: b.ask(p) for p in PROMPTS}
    stopped = [p for p, r in before.items() if climbed(r) == ["small"]]
    assert len(stopped) >= 5, "the warm start should stop at the cheap rung on confident answers"
    assert any(climbed(r) == CHAIN for r in before.values())  # and escalate elsewhere

    # through A only: on these prompts the cheap model's answers are wrong, the dear one's right
    served_by_a, replica_a = [], set()
    for k in range(40):
        response = a.ask(stopped[k % len(stopped)])
        body = response.json()
        served_by_a.append(body["id"])
        replica_a.add(response.headers["x-ladder-replica"])
        quality = 0.0 if body["model"] == "small" else 1.0
        labelled = a.client.post("/v1/feedback", json={"id": body["id"], "quality": quality})
        assert labelled.status_code == 200, labelled.text

    deadline = time.monotonic() + 15  # B refits at its next sync after the 10th label
    while climbed(b.ask(stopped[0])) != CHAIN:
        assert time.monotonic() < deadline, "B never learnt from the feedback sent to A"
        time.sleep(SYNC_S)
    after = {p: b.ask(p) for p in stopped}
    assert all(climbed(r) == CHAIN for r in after.values())
    assert all(r.json()["ladder"]["stages"][0]["decision"] == "escalate" for r in after.values())

    # one database: the export holds both replicas' requests, each marked by its replica
    replica_b = {r.headers["x-ladder-replica"] for r in (*before.values(), *after.values())}
    assert len(replica_a) == len(replica_b) == 1 and replica_a != replica_b
    exported = tmp_path / "export.jsonl"
    wanted = set(served_by_a) | {r.json()["id"] for r in after.values()}
    deadline = time.monotonic() + 10  # each replica's writer commits its rows in batches
    while True:
        result = CliRunner().invoke(app, ["logs", "export", "--database", database, "-o",
                                          str(exported)])
        assert result.exit_code == 0, result.output
        log = load_runlog(exported)
        ids = set(log["query_id"])
        if wanted <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert wanted <= ids
    labelled = log.dropna(subset=["quality"])
    assert set(labelled["query_id"]) <= set(served_by_a) and len(labelled) == 40

    # A dies: B still serves, and takes feedback on what A served (the rows are shared)
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(10)
    assert b.ask(PROMPTS[1]).status_code == 200
    relabel = b.client.post("/v1/feedback", json={"id": served_by_a[0], "quality": 1.0})
    assert relabel.status_code == 200, relabel.text


def _missing_tools() -> str | None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return "nginx is not installed (Debian: apt-get install nginx-light)"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which(
            "initdb") is None:
        return "PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)"
    return None


@pytest.mark.slow
def test_worked_example_runs_behind_nginx_on_the_fake_upstream(tmp_path):
    """examples/replicas/run.sh --fake: PostgreSQL, the fake upstream, two replicas, nginx in
    front; both replicas answer through nginx and everything stops at the end."""
    missing = _missing_tools()
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHON": sys.executable,
           "LADDER_EXAMPLE_DIR": str(tmp_path / "run")}
    done = subprocess.run(["bash", str(ROOT / "examples" / "replicas" / "run.sh"), "--fake"],
                          capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "both replicas answered" in output
    assert "replica a:" in output and "replica b:" in output
    assert not (tmp_path / "run").exists()  # cleaned up by its trap
