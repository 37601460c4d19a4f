"""`ladder logs export`: the gateway's database as a run log that `ladder fit` reads."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from typer.testing import CliRunner

from ladder.cli import app
from ladder.runlog import load_runlog
from ladder.server.records import FeedbackRecord
from ladder.server.store import Store

runner = CliRunner()


def one_line_error(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())  # the console wraps at its width
    assert text in message and "Traceback" not in message
    assert message.startswith("error:") and message.count("error:") == 1


def fill(url: str, make_request, n: int = 60) -> None:
    """Requests that ran both models, answered by each in turn, all labelled."""
    rng = np.random.default_rng(0)

    async def label_all(store: Store) -> None:
        for i in range(n):
            conf = float(rng.uniform())
            store.submit(make_request(f"q{i}", answered=i % 2, confidence=conf,
                                      created=float(i)))
            right = rng.uniform() < (conf if i % 2 == 0 else 0.8)
            assert await store.add_feedback(FeedbackRecord(f"q{i}", float(right), i, None))
        store.submit(make_request("unlabelled", created=float(n)))

    with Store(url) as store:
        asyncio.run(label_all(store))


def test_export_from_config_then_fit(tmp_path, make_request):
    fill(f"sqlite:///{tmp_path / 'gw.db'}", make_request)
    config = tmp_path / "ladder.yaml"
    config.write_text("models:\n  - {name: small, backend: fake}\n  - {name: large, "
                      "backend: fake}\nserver:\n  database: sqlite:///gw.db\n")
    log = tmp_path / "out" / "served.jsonl"
    result = runner.invoke(app, ["logs", "export", "-o", str(log), "--config", str(config),
                                 "--policy", "online"])
    assert result.exit_code == 0, result.output
    assert "wrote 122 rows" in result.output
    df = load_runlog(log)
    assert df["quality"].notna().sum() == 60 and df["query_id"].nunique() == 61
    policy = tmp_path / "policy.skops"
    result = runner.invoke(app, ["fit", str(log), "-o", str(policy), "--policy", "threshold",
                                 "--lambda", "0.5"])
    assert result.exit_code == 0, result.output
    assert policy.exists()


def test_export_from_postgres(postgres_url, make_request, tmp_path):
    fill(postgres_url, make_request, n=10)
    result = runner.invoke(app, ["logs", "export", "-o", str(tmp_path / "log.csv"),
                                 "--database", postgres_url])
    assert result.exit_code == 0, result.output
    assert len(load_runlog(tmp_path / "log.csv")) == 22


@pytest.mark.parametrize("args, text", [
    (["--database", "nonsense"], "not a database URL"),
    (["--database", "sqlite:///definitely/missing.db"], "no database at"),
    (["--database", "postgresql://u:pw@127.0.0.1:1/db"], "cannot open database"),
    ([], "give the database"),
    (["--config", "missing.yaml"], "cannot read config"),
])
def test_user_mistakes_exit_2_with_one_line(args, text, tmp_path):
    result = runner.invoke(app, ["logs", "export", "-o", str(tmp_path / "x.jsonl"), *args])
    one_line_error(result, text)
    assert "pw" not in result.output


def test_nothing_to_export_and_bad_suffix(tmp_path, make_request):
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    fill(url, make_request, n=4)
    result = runner.invoke(app, ["logs", "export", "-o", str(tmp_path / "x.jsonl"),
                                 "--database", url, "--policy", "absent"])
    one_line_error(result, "nothing to export")
    result = runner.invoke(app, ["logs", "export", "-o", str(tmp_path / "x.txt"),
                                 "--database", url])
    one_line_error(result, "name the output")


def test_spend_shows_each_key_by_digest(tmp_path, make_request):
    fill(f"sqlite:///{tmp_path / 'gw.db'}", make_request, n=4)
    result = runner.invoke(app, ["logs", "spend", "--database",
                                 f"sqlite:///{tmp_path / 'gw.db'}"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if " k1 " in line]
    assert len(rows) == 1 and " 5 " in rows[0]  # 4 labelled requests and 1 unlabelled
