"""A schemathesis run over the gateway's OpenAPI schema: every operation, inputs that fit
the schema and inputs that do not, authenticated; no 5xx from the gateway, every error an
OpenAI error body, every declared response shape met."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from gateway_setup import gateway_config
from ladder.config import load_config
from ladder.server.app import create_app

KEY = "sk-fuzz-secret-1"
EXAMPLES = 100  # per operation and mode: the run takes about a minute on 2 cores
SERVED = ["ladder", "balanced", "learner", "small", "big", "ladder:lambda=5000"]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory):
    return gateway_config(tmp_path_factory.mktemp("fuzz"), api_keys=[KEY], sync_s=0.05)


@pytest.fixture
def api(config_path):
    """A fresh app per test: schemathesis ends the app's lifespan (closing its store) with
    the test that started it."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(load_config(config_path)))


def served_model(case_and_name):
    """Most generated model names are unknown (404); most valid cases name a served one,
    so the cascades and pass-throughs run on generated parameters too."""
    case, name = case_and_name
    if name is not None and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = name
    return case


def check(case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and isinstance(error["type"], str), error
    if response.status_code == 413:  # refused by the body limit before parsing: a rejection,
        return  # though schemathesis's list of rejecting statuses lacks 413
    # the gateway ignores unknown fields (clients add them faster than gateways learn
    # them), so a request made invalid only by an extra field is accepted by design
    case.validate_response(response)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_gateway_never_fails_and_speaks_openai(api, mode):
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions",
                                              "/v1/models", "/v1/feedback", "/readyz"}
    for operation in operations:
        names = [*SERVED, None] if mode == GenerationMode.POSITIVE else [None]
        cases = st.tuples(operation.as_strategy(generation_mode=mode),
                          st.sampled_from(names)).map(served_model)

        @given(cases)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            check(case)

        try:
            run()
        except Unsatisfiable:  # nothing to get wrong in a request without parameters
            assert mode == GenerationMode.NEGATIVE and not operation.body
