"""Asynchronous and batch sends over real HTTP against ``conversa serve`` on PostgreSQL:
accepted with 202, then sent by the server's own dispatcher, woken by NOTIFY (the poll
interval is a minute, far longer than the test waits)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, running_server

pytestmark = pytest.mark.postgres

TO = "+15551234567"
#: Far longer than any wait below: a message sent in time was woken, not polled for.
POLL_SECONDS = "600"
SENT_WITHIN = 20.0


@pytest.fixture
def async_server(postgres_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(postgres_url, tmp_path, dispatch_poll_seconds=POLL_SECONDS) as server:
        yield server


def wait_until_status(client: httpx.Client, message_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + SENT_WITHIN
    while True:
        message: dict[str, Any] = client.get(f"/conversa/messages/{message_id}").json()
        if message["status"] == wanted or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


def test_respond_async_answers_202_and_the_worker_sends_it(async_server: Server) -> None:
    with async_server.client() as client:
        # A client that cannot wait for the provider asks for an asynchronous answer.
        body = {"channel": "sms", "to": TO, "body": "Your parcel ships today"}
        headers = {"Prefer": "respond-async", "Idempotency-Key": "parcel-1"}
        answer = client.post("/conversa/messages", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.headers["Preference-Applied"] == "respond-async"
        accepted = answer.json()
        assert accepted["status"] == "queued"
        assert answer.headers["Location"] == f"/conversa/messages/{accepted['id']}"

        # The server's dispatcher, woken by the commit's NOTIFY, sends it.
        sent = wait_until_status(client, accepted["id"], "sent")
        assert sent["status"] == "sent", sent
        assert sent["attempts"] == 1
        types = [event["type"] for event in sent["events"]]
        assert types[0] == "queued" and "sent" in types

        # The same key and request again: the stored message, not a second one.
        again = client.post("/conversa/messages", json=body, headers=headers)
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == accepted["id"]

        # The same key for another request: refused, as for a synchronous send.
        other = client.post(
            "/conversa/messages", json={**body, "body": "something else"}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_mismatch"

        # Invalid input is refused before anything is recorded, as for a synchronous send.
        bad = client.post(
            "/conversa/messages",
            json={**body, "to": "not a number"},
            headers={"Prefer": "respond-async"},
        )
        assert bad.status_code == 422
        assert "to" in bad.json()["error"]["fields"]

        # Without the preference the send stays synchronous.
        plain = client.post("/conversa/messages", json=body)
        assert plain.status_code == 201
        assert plain.json()["status"] == "sent"


def test_a_batch_records_the_valid_items_and_refuses_the_others(async_server: Server) -> None:
    with async_server.client() as client:
        # One key was used before the batch, by a single send.
        first = client.post(
            "/conversa/messages",
            json={"channel": "sms", "to": TO, "body": "earlier"},
            headers={"Idempotency-Key": "earlier-1", "Prefer": "respond-async"},
        )
        assert first.status_code == 202
        items: list[Any] = [
            {"channel": "sms", "to": TO, "body": "one", "idempotency_key": "b-1"},
            {"channel": "sms", "to": "12", "body": "bad number", "idempotency_key": "b-2"},
            {"channel": "whatsapp", "to": TO, "body": "two", "idempotency_key": "b-3"},
            {"channel": "sms", "to": TO, "body": "earlier", "idempotency_key": "earlier-1"},
            {"channel": "sms", "to": TO, "body": "changed", "idempotency_key": "earlier-1"},
            {"channel": "sms", "to": TO, "body": "one", "idempotency_key": "b-1"},
            {"channel": "fax", "to": TO, "body": "x"},
            "not an object",
            {"channel": "sms", "to": TO, "body": "no key"},
            {"channel": "sms", "to": TO, "body": "x", "colour": "red"},
            {"channel": "sms", "to": TO, "body": "x", "idempotency_key": "spaces are not ok"},
        ]
        answer = client.post("/conversa/messages/batch", json={"messages": items})
        assert answer.status_code == 202, answer.text
        data = answer.json()["data"]
        assert [item["index"] for item in data] == list(range(len(items)))
        assert [item["status"] for item in data] == [
            201, 422, 201, 200, 422, 200, 422, 422, 201, 422, 422
        ]  # fmt: skip
        assert "to" in data[1]["error"]["fields"]
        assert data[3]["message"]["id"] == first.json()["id"]
        assert data[4]["error"]["code"] == "idempotency_key_mismatch"
        assert data[5]["message"]["id"] == data[0]["message"]["id"]  # twice in one batch
        assert "channel" in data[6]["error"]["fields"]
        assert "colour" in data[9]["error"]["fields"]
        assert "idempotency_key" in data[10]["error"]["fields"]

        # Every recorded item is sent by the dispatcher, once.
        for index in (0, 2, 8):
            message = wait_until_status(client, data[index]["message"]["id"], "sent")
            assert message["status"] == "sent", message
            assert message["attempts"] == 1

        # The batch again: nothing new is recorded; the keyed items replay.
        again = client.post("/conversa/messages/batch", json={"messages": items[:1]})
        assert again.json()["data"][0]["status"] == 200


def test_a_batch_is_refused_whole_when_it_is_not_a_batch(async_server: Server) -> None:
    item = {"channel": "sms", "to": TO, "body": "hi"}
    with async_server.client() as client:
        too_many = client.post("/conversa/messages/batch", json={"messages": [item] * 1001})
        assert too_many.status_code == 422
        assert "messages" in too_many.json()["error"]["fields"]
        not_a_list = client.post("/conversa/messages/batch", json={"messages": item})
        assert not_a_list.status_code == 422
        assert "messages" in not_a_list.json()["error"]["fields"]
        empty = client.post("/conversa/messages/batch", json={"messages": []})
        assert empty.status_code == 422
        huge = client.post(
            "/conversa/messages/batch",
            content=b'{"messages": ["' + b"x" * (9 * 1024 * 1024) + b'"]}',
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        anonymous = httpx.post(
            f"{async_server.base_url}/conversa/messages/batch", json={"messages": [item]}
        )
        assert anonymous.status_code == 401
        listed = client.get("/conversa/messages", params={"status": "queued"}).json()
        assert listed["meta"]["total"] == 0  # nothing of these was recorded
