"""The gateway over HTTP, in process: OpenAI-shaped answers, the ladder report, feedback,
keys, limits and every error as an OpenAI error body."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gateway_setup import gateway_config
from ladder.config import load_config
from ladder.server.app import create_app

CHAT = "/v1/chat/completions"


def ask(k: int) -> dict:
    return {"role": "user", "content": f"What is {k} + {k}?"}


def wait_ready(client: TestClient, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        if response.status_code == 200:
            return response.json()
        time.sleep(0.05)
    raise AssertionError(f"not ready: {response.json()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    folder = tmp_path_factory.mktemp("gateway")
    path = gateway_config(folder, api_keys=["sk-test-secret-1"], sync_s=0.05)
    with TestClient(create_app(load_config(path)),
                    headers={"Authorization": "Bearer sk-test-secret-1"}) as client:
        wait_ready(client)
        yield client, folder


def test_models_lists_policies_then_models(served):
    client, _ = served
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["balanced", "learner", "small", "big"]


def test_chat_through_a_cascade_reports_its_stages(served):
    client, _ = served
    seen = set()
    for k in range(20):
        response = client.post(CHAT, json={"model": "balanced", "messages": [ask(k)]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "chat.completion"
        ladder = body["ladder"]
        stages = ladder["stages"]
        assert body["model"] == stages[-1]["model"] or stages[-1]["decision"] == "stop"
        assert [s["model"] for s in stages] == ["small", "big"][: len(stages)]
        assert stages[-1]["decision"] == "stop"
        assert all(s["decision"] == "escalate" for s in stages[:-1])
        assert ladder["cost"] == pytest.approx(sum(s["cost"] for s in stages))
        assert response.headers["x-ladder-stage"] == str(len(stages) - 1)
        assert float(response.headers["x-ladder-overhead-ms"]) >= 0
        assert body["usage"]["total_tokens"] > 0
        seen.add(len(stages))
        if len(stages) == 1:
            assert ladder["saved"] > 0  # stopping at the cheap model saved the dear one
    assert seen == {1, 2}  # the policy both stops and escalates on these questions


def test_default_name_and_overrides_pick_policies(served):
    client, _ = served
    plain = client.post(CHAT, json={"model": "ladder", "messages": [ask(3)]}).json()
    assert plain["ladder"]["policy"] == "balanced"
    cheap = client.post(CHAT, json={"model": "ladder:lambda=1e9", "messages": [ask(3)]})
    assert cheap.status_code == 200, cheap.text
    assert [s["model"] for s in cheap.json()["ladder"]["stages"]] == ["small"]
    free = client.post(CHAT, json={"model": "ladder:lambda=0", "messages": [ask(3)]}).json()
    assert free["model"] == "big"  # cost is free: always climb to the better model
    bad = client.post(CHAT, json={"model": "ladder:lambda=-1", "messages": [ask(3)]})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_passthrough_answers_from_the_named_model(served):
    client, _ = served
    body = client.post("/v1/completions", json={"model": "big", "prompt": "What is 4 + 4?"})
    assert body.status_code == 200, body.text
    data = body.json()
    assert data["object"] == "text_completion" and data["model"] == "big"
    assert data["choices"][0]["text"].strip() == "n8"


def test_streamed_cascade_equals_the_whole_answer(served):
    client, _ = served
    whole = client.post(CHAT, json={"model": "balanced", "messages": [ask(7)]}).json()
    text, events = "", []
    with client.stream("POST", CHAT, json={"model": "balanced", "messages": [ask(7)],
                                           "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["ladder"]["stages"] == [
        {**s, "latency_ms": pytest.approx(s["latency_ms"], abs=1e9)}
        for s in whole["ladder"]["stages"]]


def test_streamed_passthrough_relays_deltas(served):
    client, _ = served
    with client.stream("POST", CHAT, json={"model": "small", "messages": [ask(2)],
                                           "stream": True,
                                           "stream_options": {"include_usage": True}}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"]["total_tokens"] > 0 and chunks[-1]["choices"] == []
    assert all(c["model"] == "small" for c in chunks)


def test_feedback_is_recorded_and_unknown_ids_are_404(served):
    client, folder = served
    rid = client.post(CHAT, json={"model": "balanced", "messages": [ask(9)]}).json()["id"]
    ok = client.post("/v1/feedback", json={"id": rid, "quality": 1.0})
    assert ok.status_code == 200 and ok.json() == {"id": rid, "recorded": True}
    rows = sqlite3.connect(folder / "gateway.db").execute(
        "select quality from feedback where request_id = ?", (rid,)).fetchall()
    assert rows == [(1.0,)]
    missing = client.post("/v1/feedback", json={"id": "chatcmpl-nope", "quality": 1})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "id"
    bad = client.post("/v1/feedback", json={"id": rid, "quality": 2})
    assert bad.status_code == 400 and "quality" in bad.json()["error"]["message"]
    typed = client.post("/v1/feedback", json={"id": rid, "quality": "1"})
    assert typed.status_code == 400 and typed.json()["error"]["code"] == "invalid_type"


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer sk-wrong"}, 401), ({"Authorization": "sk"}, 401)])
def test_keys_are_required_and_never_stored(served, headers, status):
    client, folder = served
    anonymous = TestClient(client.app)  # no `with`: the app's lifespan is already running
    response = anonymous.post(CHAT, json={"model": "small", "messages": [ask(1)]},
                              headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == "authentication_error"
    assert b"sk-test-secret-1" not in (folder / "gateway.db").read_bytes()
    assert "sk-test-secret-1" not in client.get("/metrics").text


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"model": "nope", "messages": [ask(1)]}, 404, "model_not_found"),
    ({"model": "small", "messages": [ask(1)], "n": 2}, 400, "invalid_request"),
    ({"model": "small", "messages": []}, 400, "invalid_value"),
    ({"model": "small"}, 400, "missing_required_parameter"),
    ({"model": "small", "messages": [{"role": "wizard", "content": "hi"}]}, 400,
     "invalid_value"),
    # typed strictly, as OpenAI does: nothing is coerced
    ({"model": "small", "messages": [ask(1)], "stream": "yes"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "stream": 1}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "max_tokens": "5"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "max_tokens": 5.5}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "temperature": "0.5"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "n": "1"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "stop": 5}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "user": 7}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "top_p": "high"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "top_p": 1.5}, 400, "invalid_value"),
    ({"model": "small", "messages": [ask(1)], "seed": 1.5}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)], "logprobs": "true"}, 400, "invalid_type"),
    ({"model": "small", "messages": [ask(1)],
      "stream_options": {"include_usage": "yes"}}, 400, "invalid_type"),
    ({"model": "small", "messages": [{"role": "user", "content": 5}]}, 400, "invalid_type"),
    ({"model": 5, "messages": [ask(1)]}, 400, "invalid_type"),
])
def test_client_errors_are_openai_error_bodies(served, body, status, code):
    client, _ = served
    response = client.post(CHAT, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_malformed_json_and_oversized_bodies(served):
    client, _ = served
    broken = client.post(CHAT, content=b'{"model": ', headers={"content-type":
                                                                "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    huge = {"model": "small", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
    too_big = client.post(CHAT, json=huge)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"


def test_health_metrics_and_schema(served):
    client, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["pending"] == [] and ready["errors"] == {}
    text = client.get("/metrics").text
    assert 'ladder_requests_total{model="small",policy="balanced",status="200"}' in text
    schema = client.get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models",
            "/v1/feedback"} <= set(schema["paths"])


def test_overload_answers_429_with_retry_after(tmp_path):
    path = gateway_config(tmp_path, log=False, max_concurrency=1)
    raw = load_config(path).model_dump(mode="json", by_alias=True)
    raw["models"][0]["latency_s"] = 0.5
    path.write_text(json.dumps({k: v for k, v in raw.items() if k != "base_dir"}))
    statuses: list[int] = []
    with TestClient(create_app(load_config(path))) as client:
        wait_ready(client)

        def call() -> None:
            statuses.append(client.post(CHAT, json={"model": "small",
                                                    "messages": [ask(1)]}).status_code)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = client.post(CHAT, json={"model": "small", "messages": [ask(1)]})
    assert sorted(statuses)[0] == 200 and 429 in statuses
    assert refused.status_code == 200  # the limit is on requests in flight, not a quota


def test_a_broken_policy_keeps_readyz_at_503(tmp_path):
    path = gateway_config(tmp_path, log=False,
                          policies=[{"name": "broken", "file": "missing.json"}])
    with TestClient(create_app(load_config(path))) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "broken" in ready.json()["errors"]
        assert client.get("/healthz").status_code == 200
        # the models still answer directly while the policy is broken; the policy is a 503
        direct = client.post(CHAT, json={"model": "small", "messages": [ask(1)]})
        assert direct.status_code == 200
        broken = client.post(CHAT, json={"model": "broken", "messages": [ask(1)]})
        assert broken.status_code == 503 and "missing.json" in broken.json()["error"]["message"]


def test_feedback_can_label_a_stage_that_was_not_returned(served):
    client, folder = served
    for k in range(40):
        body = client.post(CHAT, json={"model": "balanced", "messages": [ask(k)]}).json()
        if len(body["ladder"]["stages"]) == 2:
            break
    cheap = body["ladder"]["stages"][0]
    assert cheap["model"] == "small" and "answer" in cheap
    ok = client.post("/v1/feedback", json={"id": body["id"], "quality": 0, "model": "small"})
    assert ok.status_code == 200, ok.text
    never = client.post("/v1/feedback", json={"id": body["id"], "quality": 1, "model": "nope"})
    assert never.status_code == 404 and never.json()["error"]["param"] == "model"
    rows = sqlite3.connect(folder / "gateway.db").execute(
        "select model, quality from feedback where request_id = ?", (body["id"],)).fetchall()
    assert rows == [("small", 0.0)]


def test_a_policy_not_yet_ready_is_a_503_not_a_404(tmp_path):
    path = gateway_config(tmp_path)
    client = TestClient(create_app(load_config(path)))  # no lifespan: nothing fitted yet
    response = client.post(CHAT, json={"model": "balanced", "messages": [ask(1)]})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert client.post(CHAT, json={"model": "nope", "messages": [ask(1)]}).status_code == 404


def test_integers_where_numbers_are_expected_and_unknown_fields_are_accepted(served):
    client, _ = served
    response = client.post(CHAT, json={"model": "small", "messages": [ask(1)],
                                       "temperature": 1, "top_p": 1, "seed": 3, "max_tokens": 8.0,
                                       "logit_bias": {"50256": -100}, "a_field_from_2030": 1})
    assert response.status_code == 200, response.text
