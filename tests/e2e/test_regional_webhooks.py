"""Vonage's and Africa's Talking's delivery webhooks end to end: ``conversa serve`` on
PostgreSQL, the providers faked on loopback, receipts signed with the official Vonage SDK's
signer and posted over real HTTP (GET, form and JSON, as Vonage sends either)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from vonage_http_client.auth import Auth

from tests.e2e.conftest import Server, running_server
from tests.fakes.regional import (
    AT_API_KEY,
    AT_USERNAME,
    VONAGE_KEY,
    VONAGE_SECRET,
    FakeAfricasTalking,
    FakeVonage,
)

PUBLIC = "https://hooks.example.com"
SIGNATURE_SECRET = "vonage-signature-secret-for-tests"
AT_TOKEN = "africastalking-url-token-for-tests"


@pytest.fixture(scope="module")
def vonage() -> Iterator[FakeVonage]:
    with FakeVonage() as fake:
        yield fake


@pytest.fixture(scope="module")
def africastalking() -> Iterator[FakeAfricasTalking]:
    with FakeAfricasTalking() as fake:
        yield fake


@pytest.fixture(scope="module")
def vonage_server(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory, vonage: FakeVonage
) -> Iterator[Server]:
    url = f"{postgres_database}?schema=vonage_{uuid.uuid4().hex[:8]}"
    with running_server(
        url,
        tmp_path_factory.mktemp("vonage"),
        sms_driver="vonage",
        vonage_api_key=VONAGE_KEY,
        vonage_api_secret=VONAGE_SECRET,
        vonage_sms_from="AcmeInc",
        vonage_api_base=vonage.url,
        vonage_signature_secret=SIGNATURE_SECRET,
        vonage_signature_method="sha256",
        webhook_base_url=PUBLIC,
        rate_limit="100000/minute",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def at_server(
    postgres_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    africastalking: FakeAfricasTalking,
) -> Iterator[Server]:
    url = f"{postgres_database}?schema=at_{uuid.uuid4().hex[:8]}"
    with running_server(
        url,
        tmp_path_factory.mktemp("at"),
        sms_driver="africastalking",
        africastalking_username=AT_USERNAME,
        africastalking_api_key=AT_API_KEY,
        africastalking_api_base=africastalking.url,
        africastalking_webhook_token=AT_TOKEN,
        webhook_base_url=PUBLIC,
        rate_limit="100000/minute",
    ) as running:
        yield running


def send(server: Server, body: str = "hi") -> dict[str, Any]:
    with server.client() as client:
        response = client.post(
            "/conversa/messages", json={"channel": "sms", "to": "+447700900000", "body": body}
        )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    assert message["status"] == "sent", message
    return message


def shown(server: Server, message_id: str) -> dict[str, Any]:
    with server.client() as client:
        found: dict[str, Any] = client.get(f"/conversa/messages/{message_id}").json()
    return found


def signed(params: dict[str, str], *, secret: str = SIGNATURE_SECRET) -> dict[str, str]:
    auth = Auth(api_key=VONAGE_KEY, signature_secret=secret, signature_method="sha256")
    params = {"timestamp": str(int(time.time())), "nonce": uuid.uuid4().hex, **params}
    return {**params, "sig": str(auth.sign_params(dict(params))).upper()}


def dlr(message: dict[str, Any], part: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "msisdn": "447700900000",
        "to": "AcmeInc",
        "network-code": "23410",
        "messageId": part,
        "price": "0.03330000",
        "status": status,
        "scts": "2612060800",
        "err-code": "0",
        "api-key": VONAGE_KEY,
        "client-ref": message["id"],
        "message-timestamp": "2026-12-06 08:00:00",
        **extra,
    }


def hook(server: Server, message_id: str | None = None) -> str:
    query = f"?message_id={message_id}" if message_id else ""
    return f"{server.base_url}/conversa/webhooks/vonage{query}"


def test_a_long_message_is_delivered_when_its_last_part_is(
    vonage_server: Server, vonage: FakeVonage
) -> None:
    message = send(vonage_server, "A long message. " * 25)
    parts = vonage.sent[-1]["parts"]
    assert len(parts) == 3
    assert vonage.sent[-1]["form"]["callback"] == (
        f"{PUBLIC}/conversa/webhooks/vonage?message_id={message['id']}"
    )
    assert message["provider_message_id"] == parts[0]
    url = hook(vonage_server, message["id"])
    # One part by GET, one as a form, one as JSON: Vonage's three ways.
    first = httpx.get(url, params=signed(dlr(message, parts[2], "delivered")))
    assert first.status_code == 200, first.text
    again = httpx.post(url, data=signed(dlr(message, parts[2], "delivered")))
    assert again.status_code == 200  # a repeat records nothing
    assert httpx.post(url, data=signed(dlr(message, parts[0], "accepted"))).status_code == 200
    assert httpx.post(url, data=signed(dlr(message, parts[0], "delivered"))).status_code == 200
    assert shown(vonage_server, message["id"])["status"] == "sent"
    last = httpx.post(url, json=signed(dlr(message, parts[1], "delivered")))
    assert last.status_code == 200, last.text
    found = shown(vonage_server, message["id"])
    assert found["status"] == "delivered"
    assert [e["type"] for e in found["events"]] == [
        "queued",
        "sent",
        "parts_accepted",
        "part_delivered",
        "part_delivered",
        "delivered",
    ]


def test_forged_stale_and_unsigned_receipts_are_refused(vonage_server: Server) -> None:
    message = send(vonage_server)
    url = hook(vonage_server, message["id"])
    part = message["provider_message_id"]
    good = signed(dlr(message, part, "delivered"))
    stale = signed(dlr(message, part, "delivered", timestamp=str(int(time.time()) - 600)))
    refusals = {
        "forged": {**good, "status": "failed"},
        "wrong secret": signed(dlr(message, part, "delivered"), secret="not-the-secret"),
        "stale": stale,
        "unsigned": dlr(message, part, "delivered"),
    }
    for case, params in refusals.items():
        response = httpx.post(url, data=params)
        assert response.status_code == 403, case
        assert response.json()["error"]["code"] == "forbidden"
    assert [e["type"] for e in shown(vonage_server, message["id"])["events"]] == [
        "queued",
        "sent",
    ]
    assert httpx.post(url, data=good).status_code == 200
    assert shown(vonage_server, message["id"])["status"] == "delivered"


def test_a_failed_receipt_and_an_inbound_sms(vonage_server: Server) -> None:
    message = send(vonage_server)
    # Matched by client-ref alone: the account's default webhook has no message_id.
    params = signed(dlr(message, message["provider_message_id"], "failed", **{"err-code": "3"}))
    assert httpx.post(hook(vonage_server), data=params).status_code == 200
    found = shown(vonage_server, message["id"])
    assert found["status"] == "undelivered"
    assert found["error"] == {"code": "vonage_dlr_3", "message": "Absent subscriber (permanent)"}
    inbound = signed(
        {
            "msisdn": "447700900001",
            "to": "447700900000",
            "messageId": "0A0000000123ABCD1",
            "text": "Hello & welcome",
            "type": "text",
            "keyword": "HELLO",
            "api-key": VONAGE_KEY,
            "message-timestamp": "2026-12-06 08:00:00",
        }
    )
    response = httpx.get(hook(vonage_server), params=inbound)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 0, "inbound_messages": 1, "inbound_recorded": 1}


def test_africastalking_reports_need_the_url_token(
    at_server: Server, africastalking: FakeAfricasTalking
) -> None:
    message = send(at_server)
    assert message["provider_message_id"] == africastalking.sent[-1]["messageId"]
    url = f"{at_server.base_url}/conversa/webhooks/africastalking"
    report = {
        "id": message["provider_message_id"],
        "status": "Success",
        "phoneNumber": "+447700900000",
        "networkCode": "23410",
        "retryCount": "0",
    }
    for case, params in {"no token": {}, "wrong token": {"token": "guess"}}.items():
        response = httpx.post(url, params=params, data=report)
        assert response.status_code == 403, case
    assert shown(at_server, message["id"])["status"] == "sent"
    response = httpx.post(url, params={"token": AT_TOKEN}, data=report)
    assert response.status_code == 200, response.text
    assert shown(at_server, message["id"])["status"] == "delivered"

    failed = send(at_server)
    response = httpx.post(
        url,
        params={"token": AT_TOKEN},
        data={
            "id": failed["provider_message_id"],
            "status": "Rejected",
            "failureReason": "UserInBlackList",
        },
    )
    assert response.status_code == 200
    found = shown(at_server, failed["id"])
    assert found["status"] == "failed"
    assert found["error"]["code"] == "africastalking_UserInBlackList"
