"""The HTTP API end to end: ``conversa serve`` on PostgreSQL, driven over real HTTP."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conversa.app.bootstrap import bootstrap
from conversa.app.service import ConversaService
from tests.e2e.conftest import Server, running_server
from tests.support import make_settings


def bootstrap_for(server: Server) -> ConversaService:
    return bootstrap(make_settings(server.database_url))


def wait_listed(client: httpx.Client, message_id: str, status: str) -> dict[str, Any]:
    """The message as the list shows it, once the projection has it in ``status``."""
    deadline = time.monotonic() + 5
    while True:
        page = client.get("/conversa/messages", params={"per_page": "100"}).json()
        for item in page["data"]:
            if item["id"] == message_id and item["status"] == status:
                found: dict[str, Any] = item
                return found
        assert time.monotonic() < deadline, f"{message_id} never listed as {status}"
        time.sleep(0.02)


def test_send_list_and_inspect_messages(server: Server) -> None:
    with server.client() as client:
        sms = client.post(
            "/conversa/messages",
            json={"channel": "sms", "to": "+1 555 123 4567", "body": "Your order has shipped"},
        )
        assert sms.status_code == 201, sms.text
        message = sms.json()
        assert sms.headers["location"] == f"/conversa/messages/{message['id']}"
        assert message["status"] == "sent"
        assert message["to"] == "+15551234567"
        assert message["body"] == "Your order has shipped"
        assert message["driver"] == "log"
        assert message["attempts"] == 1
        assert message["provider_message_id"].startswith("log-")
        assert message["error"] is None and message["idempotency_key"] is None

        text = client.post(
            "/conversa/messages",
            json={
                "channel": "whatsapp",
                "to": "+447911123456",
                "body": "Welcome",
                "meta": {"a": 1},
            },
        )
        template = client.post(
            "/conversa/messages",
            json={
                "channel": "whatsapp",
                "to": "+447911123456",
                "template": {"name": "order_shipped", "variables": ["1Z999"]},
            },
        )
        assert text.status_code == template.status_code == 201
        assert text.json()["meta"] == {"a": 1}
        assert template.json()["template"] == {"name": "order_shipped", "variables": ["1Z999"]}
        assert "body" not in template.json()

        # The list reads the projection, which the server's worker keeps up to date.
        listed = wait_listed(client, template.json()["id"], "sent")
        assert listed == template.json()
        everything = client.get("/conversa/messages").json()
        assert [m["id"] for m in everything["data"]] == [
            template.json()["id"],
            text.json()["id"],
            message["id"],
        ]
        assert everything["meta"] == {"page": 1, "per_page": 25, "total": 3}

        def ids(**params: str) -> list[str]:
            return [m["id"] for m in client.get("/conversa/messages", params=params).json()["data"]]

        assert ids(channel="sms") == [message["id"]]
        assert ids(channel="whatsapp") == [template.json()["id"], text.json()["id"]]
        assert ids(status="sent", channel="sms") == [message["id"]]
        assert ids(status="delivered") == []
        # A number in any common spelling, even with its + turned into a space by a query string.
        assert ids(to="+44 7911 123456") == ids(to="447911123456") == ids(channel="whatsapp")
        assert (
            client.get("/conversa/messages?to=+15551234567").json()["data"][0]["id"]
            == (message["id"])
        )
        page2 = client.get("/conversa/messages", params={"per_page": "2", "page": "2"}).json()
        assert [m["id"] for m in page2["data"]] == [message["id"]]
        assert page2["meta"] == {"page": 2, "per_page": 2, "total": 3}
        assert client.get("/conversa/messages?page=9").json()["data"] == []

        shown = client.get(f"/conversa/messages/{message['id']}").json()
        assert {k: v for k, v in shown.items() if k != "events"} == message
        assert [e["type"] for e in shown["events"]] == ["queued", "sent"]
        assert shown["events"][0]["to"] == "+15551234567"
        assert shown["events"][1]["provider_message_id"] == message["provider_message_id"]
        assert all("body" not in e and "fingerprint" not in e for e in shown["events"])

        # Numbers went into query strings above; none reaches the log, not even the
        # access log, whose lines carry the path and the request id instead.
        output = server.output()
        assert "5551234567" not in output and "7911123456" not in output
        access = [json.loads(line) for line in output.splitlines() if "conversa.access" in line]
        assert any(
            line["message"].startswith("GET /conversa/messages 200") and line["request_id"]
            for line in access
        )

        unknown = client.get("/conversa/messages/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
        assert client.get("/conversa/messages/not-a-uuid").status_code == 404


def test_idempotent_replay_and_mismatch(server: Server) -> None:
    with server.client() as client:
        request = {"channel": "sms", "to": "+15551234567", "body": "Your order has shipped"}
        headers = {"Idempotency-Key": "order-4711-shipped"}
        first = client.post("/conversa/messages", json=request, headers=headers)
        again = client.post("/conversa/messages", json=request, headers=headers)
        assert first.status_code == 201 and again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert again.json() == first.json()
        assert first.json()["idempotency_key"] == "order-4711-shipped"

        different = client.post(
            "/conversa/messages", json={**request, "body": "Cancelled"}, headers=headers
        )
        assert different.status_code == 422
        assert different.json()["error"]["code"] == "idempotency_key_mismatch"
        too_long = client.post(
            "/conversa/messages", json=request, headers={"Idempotency-Key": "k" * 256}
        )
        assert too_long.status_code == 422
        assert "Idempotency-Key" in too_long.json()["error"]["fields"]
        assert client.get("/conversa/messages").json()["meta"]["total"] <= 1


@pytest.mark.parametrize("write_batch_size", ["100", "1"], ids=["group-commit", "direct"])
def test_fifty_concurrent_requests_with_one_key_send_once(
    postgres_url: str, tmp_path: Path, write_batch_size: str
) -> None:
    with running_server(postgres_url, tmp_path, write_batch_size=write_batch_size) as server:
        fifty_requests_with_one_key_send_once(server)


def fifty_requests_with_one_key_send_once(server: Server) -> None:
    request = {"channel": "sms", "to": "+15551234567", "body": "Once only"}

    def post(client: httpx.Client) -> httpx.Response:
        return client.post("/conversa/messages", json=request, headers={"Idempotency-Key": "fifty"})

    with server.client(limits=httpx.Limits(max_connections=50)) as client:
        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(lambda _: post(client), range(50)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 49 + [201], [r.text for r in responses if r.status_code >= 300]
        assert len({r.json()["id"] for r in responses}) == 1
        message_id = responses[0].json()["id"]
        assert all(
            r.headers.get("idempotent-replayed") == "true"
            for r in responses
            if r.status_code == 200
        )
        events = client.get(f"/conversa/messages/{message_id}").json()["events"]
        assert [e["type"] for e in events] == ["queued", "sent"]
    # The log driver writes one line per call it receives.
    assert server.output().count(f"message_id={message_id} provider_message_id=") == 1


def test_requests_without_a_valid_token_are_refused(server: Server) -> None:
    anonymous = httpx.Client(base_url=server.base_url)
    wrong = httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer nope"})
    basic = httpx.Client(base_url=server.base_url, headers={"Authorization": "Basic eDp5"})
    for client in (anonymous, wrong, basic):
        with client:
            for response in (
                client.get("/conversa/messages"),
                client.get("/conversa/messages/00000000-0000-0000-0000-000000000000"),
                client.post("/conversa/messages", json={"channel": "sms"}),
            ):
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["error"]["code"] == "unauthorized"
            assert client.get("/conversa/health").status_code == 200


def test_a_revoked_token_stops_working_within_seconds(server: Server) -> None:
    from conversa.app.bootstrap import bootstrap
    from tests.support import make_settings

    with server.client() as client:
        assert client.get("/conversa/messages").status_code == 200
        with bootstrap(make_settings(server.database_url)) as service:
            (token,) = service.tokens.list()
            service.tokens.revoke(token.name)
        deadline = time.monotonic() + 10
        while client.get("/conversa/messages").status_code == 200:
            assert time.monotonic() < deadline, "the revoked token still works after 10 s"
            time.sleep(0.25)
        assert client.get("/conversa/messages").status_code == 401


def test_invalid_input_gets_a_clear_error_and_changes_nothing(server: Server) -> None:
    with server.client() as client:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"channel": "sms", "to": "+1 555", "body": "x"}, "to"),
            ({"channel": "sms", "to": "12345", "body": "x"}, "to"),
            ({"channel": "fax", "to": "+15551234567", "body": "x"}, "channel"),
            ({"channel": "sms", "to": "+15551234567"}, "body"),
            (
                {"channel": "sms", "to": "+15551234567", "body": "x", "template": {"name": "t"}},
                "template",
            ),
            ({"channel": "sms", "to": "+15551234567", "body": "x" * 1601}, "body"),
            ({"channel": "whatsapp", "to": "+15551234567", "body": "x" * 4097}, "body"),
            (
                {
                    "channel": "whatsapp",
                    "to": "+15551234567",
                    "template": {"name": "t", "variables": [1]},
                },
                "template.variables",
            ),
            ({"channel": "sms", "to": "+15551234567", "body": "x", "meta": [1]}, "meta"),
            ({"channel": "sms", "to": "+15551234567", "body": "x", "colour": "red"}, "colour"),
            ({"channel": 7, "to": "+15551234567", "body": "x"}, "channel"),
        ]
        for body, field in cases:
            response = client.post("/conversa/messages", json=body)
            assert response.status_code == 422, (body, response.text)
            error = response.json()["error"]
            assert field in error["fields"], (body, error)
            assert error["message"]

        malformed = client.post(
            "/conversa/messages",
            content=b'{"channel": ',
            headers={"Content-Type": "application/json"},
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == "malformed_json"
        assert client.post("/conversa/messages", json=[1, 2]).status_code == 400
        huge = client.post(
            "/conversa/messages",
            content=json.dumps({"channel": "sms", "to": "+15551234567", "body": "x" * 70_000}),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "payload_too_large"
        form = client.post("/conversa/messages", data={"channel": "sms"})
        assert form.status_code == 415

        for params, field in [
            ({"status": "lost"}, "status"),
            ({"channel": "fax"}, "channel"),
            ({"to": "call me"}, "to"),
            ({"page": "0"}, "page"),
            ({"per_page": "101"}, "per_page"),
            ({"per_page": "ten"}, "per_page"),
            ({"page": "²"}, "page"),  # a digit to str.isdigit(), not to int()
        ]:
            response = client.get("/conversa/messages", params=params)
            assert response.status_code == 422, params
            assert field in response.json()["error"]["fields"]

        wrong_method = client.delete("/conversa/messages")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        nowhere = client.get("/conversa/nowhere")
        assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"

        assert client.get("/conversa/messages").json()["meta"]["total"] == 0
        assert "Traceback" not in server.output()


def test_the_rate_limit_answers_429_with_retry_after(postgres_url: str, tmp_path: Path) -> None:
    with (
        running_server(postgres_url, tmp_path, rate_limit="3/minute") as server,
        server.client() as client,
    ):
        codes = [client.get("/conversa/messages").status_code for _ in range(3)]
        limited = client.get("/conversa/messages")
        assert codes == [200, 200, 200]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Health and the OpenAPI document are not rate limited.
        assert client.get("/conversa/health").status_code == 200


def test_idempotency_keys_are_scoped_to_their_token(server: Server) -> None:
    from conversa.app.bootstrap import bootstrap
    from tests.support import make_settings

    with bootstrap(make_settings(server.database_url)) as service:
        _info, other_secret = service.tokens.create("other-application")
    request = {"channel": "sms", "to": "+15551234567", "body": "Hello"}
    headers = {"Idempotency-Key": "shared-key"}
    with (
        server.client() as mine,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {other_secret}"}
        ) as theirs,
    ):
        first = mine.post("/conversa/messages", json=request, headers=headers)
        second = theirs.post("/conversa/messages", json=request, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_the_rate_limit_is_shared_by_processes_through_redis(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two servers counting in one Redis: a token gets its limit once, not once per server."""
    storage = "redis://127.0.0.1:6379/0"
    with (
        running_server(
            postgres_url, tmp_path, rate_limit="4/minute", rate_limit_storage=storage
        ) as a,
        running_server(
            postgres_url, tmp_path, "--no-worker", rate_limit="4/minute", rate_limit_storage=storage
        ) as b,
    ):
        headers = {"Authorization": f"Bearer {a.token}"}
        codes = [
            httpx.get(f"{server.base_url}/conversa/messages", headers=headers).status_code
            for server in (a, b, a, b, a, b)
        ]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_an_unknown_template_is_refused_before_anything_is_sent(
    postgres_url: str, tmp_path: Path
) -> None:
    templates = tmp_path / "templates.toml"
    templates.write_text(
        '[order_shipped]\nwhatsapp_cloud = { name = "order_shipped", language = "en_US" }\n'
    )
    with (
        running_server(postgres_url, tmp_path, templates_file=str(templates)) as server,
        server.client() as client,
    ):
        refused = client.post(
            "/conversa/messages",
            json={"channel": "whatsapp", "to": "+15551234567", "template": {"name": "nope"}},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "unknown_template"
        assert "template.name" in refused.json()["error"]["fields"]
        known = client.post(
            "/conversa/messages",
            json={
                "channel": "whatsapp",
                "to": "+15551234567",
                "template": {"name": "order_shipped", "variables": ["1Z9"]},
            },
        )
        assert known.status_code == 201
        with bootstrap_for(server) as service:
            stored = service.app.recorder.select_notifications(start=None, limit=100)
            queued = [n for n in stored if n.topic.endswith("Message.Queued")]
            assert len(queued) == 1  # only the known template was recorded
