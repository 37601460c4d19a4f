"""Shared fixtures: the real logs beside the checkout, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real logs not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


PG_BINARIES = "/usr/lib/postgresql/*/bin"


def _pg_bin() -> Path | None:
    found = sorted(Path("/").glob(PG_BINARIES.lstrip("/") + "/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server URL (no database): $LADDER_TEST_POSTGRES, else a throwaway
    cluster on a unix socket in a temp dir, stopped at the end of the session. initdb
    refuses root, so as root the cluster runs as the `postgres` user."""
    import os
    import shutil
    import subprocess
    import tempfile

    given = os.environ.get("LADDER_TEST_POSTGRES")
    if given:
        yield given
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL binaries ({PG_BINARIES}/initdb); install Debian's "
                    "postgresql package or set LADDER_TEST_POSTGRES")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ladder-pg-"))  # short: a socket path has ≤ 107 bytes
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"

    def pg(tool: str, *args: str) -> None:
        done = subprocess.run([*as_user, str(bin_dir / tool), *args], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()}")

    pg("initdb", "-D", str(data), "-A", "trust", "-U", "ladder", "-E", "UTF8", "--no-sync")
    pg("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
       f"-k {root} -c listen_addresses='' -F -c max_connections=200", "start")
    try:
        yield f"postgresql+psycopg://ladder@/postgres?host={root}"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the test server, for one test."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server)
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test on both databases: a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ladder.db'}"
    return request.getfixturevalue("postgres_url")


def served_request(request_id: str, models: tuple[str, ...] = ("small", "large"),
                   answered: int | None = None, confidence: float = 0.5,
                   policy: str = "online", key_id: str | None = "k1",
                   created: float | None = None, prompt: str | None = "What is 2 + 2?"):
    """A synthetic RequestRecord whose stages ran `models` in order (the last answered,
    unless `answered` says which); the cheap stage's confidence is given."""
    import time

    from ladder.server.records import RequestRecord, StageRecord

    answered = len(models) - 1 if answered is None else answered
    stages = tuple(
        StageRecord(i, m, f"answer-{m}", f"text of {m}",
                    {"confidence": confidence if i == 0 else 0.9, "logprob_mean": -0.2,
                     "logprob_min": -1.0, "margin": float("nan")},
                    0.5, "stop" if i == len(models) - 1 else "escalate", None,
                    0.01 * 10 ** i, 0.05, 12.0, float("nan") if i else 4.0)
        for i, m in enumerate(models))
    cost = sum(s.cost for s in stages)
    return RequestRecord(request_id, time.time() if created is None else created, "r0", key_id,
                         policy, "cascade", "chat", prompt, models[answered], len(models) - 1,
                         cost, 0.1 - cost, 200, None, 0.2, 0.01, stages,
                         None if prompt is None else len(prompt))


@pytest.fixture
def make_request():
    return served_request
