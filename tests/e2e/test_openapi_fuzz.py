"""Property-based requests from the API's own OpenAPI document against the live server.

Schemathesis generates valid and invalid requests for every operation; the server must
never answer 5xx, and every answer must match the document (status code, content type,
headers, body schema). Bounded to a few hundred cases so that the suite stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Server, running_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_server(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    import uuid

    url = f"{postgres_database}?schema=fuzz_{uuid.uuid4().hex[:8]}"
    with running_server(url, tmp_path_factory.mktemp("fuzz"), rate_limit="100000/minute") as server:
        yield server


WITHOUT_PARAMETERS = {"GET /conversa/health", "GET /metrics"}
#: A live event stream never ends, so no answer to a generated request would ever be
#: complete: every case of this operation is sent with ``live=false`` (whatever was
#: generated for ``live``), which ends the stream once it has sent the stored events. The
#: other parameters are fuzzed as generated; ``live`` itself and the live stream are
#: tested in test_events_stream.py.
EVENT_STREAM = "GET /conversa/events"
#: Cases per operation and generation mode (valid, then invalid requests).
EXAMPLES = 40


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_answer_breaks_the_document(fuzzed_server: Server, mode: GenerationMode) -> None:
    # Schemathesis's own pytest plugin does not run under this pytest; its Python API
    # with hypothesis does the same work.
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.base_url}/conversa/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {
        "POST /conversa/messages",
        "POST /conversa/messages/batch",
        "GET /conversa/messages",
        "GET /conversa/messages/{message_id}",
        "POST /conversa/messages/{message_id}/cancel",
        "GET /conversa/messages/{message_id}/media/{n}",
        "GET /conversa/conversations",
        "GET /conversa/conversations/{conversation_id}",
        "GET /conversa/recipients/{number}",
        "PUT /conversa/recipients/{number}/consent",
        "GET /conversa/events",
        "GET /conversa/health",
    }
    headers = {"Authorization": f"Bearer {fuzzed_server.token}"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.label in WITHOUT_PARAMETERS:
            continue  # there is no invalid request to make

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case[Any]) -> None:
            if case.operation.label == EVENT_STREAM:
                case.query = {**(case.query or {}), "live": "false"}
            case.call_and_validate(
                base_url=fuzzed_server.base_url,
                headers={**dict(case.headers or {}), **headers},
                checks=CHECKS,
            )

        call()
    assert "Traceback" not in fuzzed_server.output()


def test_the_document_describes_every_route(fuzzed_server: Server, tmp_path: Path) -> None:
    import httpx

    document = httpx.get(f"{fuzzed_server.base_url}/conversa/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/conversa/messages",
        "/conversa/messages/batch",
        "/conversa/messages/{message_id}",
        "/conversa/messages/{message_id}/cancel",
        "/conversa/messages/{message_id}/media/{n}",
        "/conversa/conversations",
        "/conversa/conversations/{conversation_id}",
        "/conversa/recipients/{number}",
        "/conversa/recipients/{number}/consent",
        "/conversa/events",
        "/conversa/webhooks/{provider}",
        "/conversa/health",
        "/conversa/openapi.json",
        "/metrics",
    }
    send = document["paths"]["/conversa/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendMessage"
    }
    assert {"201", "200", "401", "422", "429"} <= set(send["responses"])
    events = document["paths"]["/conversa/events"]["get"]
    assert events["security"] == [{"bearerAuth": []}]
    assert {(p["in"], p["name"]) for p in events["parameters"]} == {
        ("header", "Last-Event-ID"),
        ("query", "after"),
        ("query", "types"),
        ("query", "live"),
    }
    assert events["responses"]["200"]["content"] == {
        "text/event-stream": {"schema": {"type": "string"}}
    }
    assert {"200", "401", "422", "429"} <= set(events["responses"])
