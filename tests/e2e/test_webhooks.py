"""Delivery webhooks end to end: ``conversa serve`` on PostgreSQL, providers faked on
loopback, callbacks signed the way the providers sign them (Twilio's own validator, an
independent HMAC for Meta) and posted over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import Server, running_server
from tests.fakes.providers import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeTwilio,
    FakeWhatsAppCloud,
)

PUBLIC = "https://hooks.example.com"  # CONVERSA_WEBHOOK_BASE_URL: what the providers call
APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "meta-verify-token-for-tests"


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[FakeTwilio, FakeWhatsAppCloud]]:
    with FakeTwilio() as twilio, FakeWhatsAppCloud() as meta:
        yield twilio, meta


@pytest.fixture(scope="module")
def server(
    postgres_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    providers: tuple[FakeTwilio, FakeWhatsAppCloud],
) -> Iterator[Server]:
    import uuid

    twilio, meta = providers
    url = f"{postgres_database}?schema=hooks_{uuid.uuid4().hex[:8]}"
    with running_server(
        url,
        tmp_path_factory.mktemp("hooks"),
        sms_driver="twilio",
        whatsapp_driver="whatsapp_cloud",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        whatsapp_phone_id=WHATSAPP_PHONE_ID,
        whatsapp_token=WHATSAPP_TOKEN,
        whatsapp_api_base=meta.url,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        webhook_base_url=PUBLIC,
        rate_limit="100000/minute",
    ) as running:
        yield running


def send(server: Server, channel: str = "sms") -> dict[str, Any]:
    with server.client() as client:
        response = client.post(
            "/conversa/messages", json={"channel": channel, "to": "+15551234567", "body": "hi"}
        )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    assert message["status"] == "sent"
    return message


def events(server: Server, message_id: str) -> list[str]:
    with server.client() as client:
        body = client.get(f"/conversa/messages/{message_id}").json()
    return [e["type"] for e in body["events"]]


def twilio_callback(
    server: Server,
    message: dict[str, Any],
    status: str,
    *,
    sign_url: str | None = None,
    token: str = TWILIO_TOKEN,
    tamper: bool = False,
    signature: str | None = "compute",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    path = f"/conversa/webhooks/twilio?message_id={message['id']}"
    params = {
        "AccountSid": TWILIO_SID,
        "From": "+15550006666",
        "To": "+15551234567",
        "MessageSid": message["provider_message_id"],
        "MessageStatus": status,
        "SmsSid": message["provider_message_id"],
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        **(extra or {}),
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "compute":
        signature = RequestValidator(token).compute_signature(sign_url or PUBLIC + path, params)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    if tamper:
        params["MessageStatus"] = "read"  # one changed value after signing
    return httpx.post(server.base_url + path, content=urlencode(params), headers=headers)


def meta_payload(
    *statuses: dict[str, Any], messages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": WHATSAPP_PHONE_ID},
        "statuses": list(statuses),
    }
    if messages:
        value["messages"] = messages
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def meta_status(message: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": message["provider_message_id"],
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": "15551234567",
        **extra,
    }


def post_meta(
    server: Server, raw: bytes, *, secret: str = APP_SECRET, header: str | None = None
) -> httpx.Response:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    if header != "":
        headers["X-Hub-Signature-256"] = header or f"sha256={digest}"
    return httpx.post(
        f"{server.base_url}/conversa/webhooks/whatsapp_cloud", content=raw, headers=headers
    )


def test_a_delivery_report_shows_in_the_message_log_within_a_second(server: Server) -> None:
    message = send(server)
    with server.client() as client:
        deadline = time.monotonic() + 5
        while not any(
            m["id"] == message["id"] for m in client.get("/conversa/messages").json()["data"]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert twilio_callback(server, message, "delivered").status_code == 200
        started = time.monotonic()
        while True:
            listed = client.get("/conversa/messages", params={"status": "delivered"}).json()["data"]
            if any(m["id"] == message["id"] for m in listed):
                break
            assert time.monotonic() - started < 1.0, "not delivered in the list within a second"
            time.sleep(0.01)


def test_twilio_signatures_fail_closed(server: Server) -> None:
    message = send(server)
    path = f"/conversa/webhooks/twilio?message_id={message['id']}"
    refusals = {
        "one changed byte": twilio_callback(server, message, "delivered", tamper=True),
        "wrong secret": twilio_callback(server, message, "delivered", token="not-the-token"),
        "http instead of https": twilio_callback(
            server, message, "delivered", sign_url="http://hooks.example.com" + path
        ),
        "missing header": twilio_callback(server, message, "delivered", signature=None),
        "empty header": twilio_callback(server, message, "delivered", signature=""),
    }
    for case, response in refusals.items():
        assert response.status_code == 403, case
        assert response.json()["error"]["code"] == "forbidden"
    assert events(server, message["id"]) == ["queued", "sent"]  # nothing changed

    # Twilio's validator accepts the URL with its default port; so do we.
    with_port = twilio_callback(
        server,
        message,
        "delivered",
        sign_url="https://hooks.example.com:443" + path,
        extra={"ChannelToAddress": "+1555123XXXX", "SomethingNew": "is signed and ignored"},
    )
    assert with_port.status_code == 200
    assert events(server, message["id"]) == ["queued", "sent", "delivered"]


def test_twilio_reports_in_any_order_and_repeated(server: Server) -> None:
    message = send(server)
    for status in ["delivered", "sent", "sent", "queued", "delivered", "read", "delivered"] + [
        "read"
    ] * 10:
        assert twilio_callback(server, message, status).status_code == 200
    assert events(server, message["id"]) == ["queued", "sent", "delivered", "read"]

    failed = send(server)
    response = twilio_callback(server, failed, "undelivered", extra={"ErrorCode": "30003"})
    assert response.status_code == 200
    assert twilio_callback(server, failed, "delivered").status_code == 200  # too late: final
    with server.client() as client:
        shown = client.get(f"/conversa/messages/{failed['id']}").json()
    assert shown["status"] == "undelivered"
    assert shown["error"]["code"] == "30003"
    assert [e["type"] for e in shown["events"]] == ["queued", "sent", "failed"]


def test_meta_signatures_handshake_and_batches(server: Server) -> None:
    first, second = send(server, "whatsapp"), send(server, "whatsapp")
    # Non-ASCII text arrives as \\uXXXX escapes, and Meta signs exactly those bytes.
    inbound = [
        {"from": "15551234567", "id": "wamid.in", "type": "text", "text": {"body": "¡Olá, 世界!"}}
    ]
    payload = meta_payload(
        meta_status(first, "read", biz_opaque_callback_data=first["id"]),
        meta_status(first, "delivered"),
        meta_status(second, "failed", errors=[{"code": 131026, "title": "Message undeliverable"}]),
        messages=inbound,
    )
    raw = json.dumps(payload).encode()
    assert b"\\u4e16" in raw
    reserialised = json.dumps(payload, ensure_ascii=False).encode()
    assert post_meta(server, reserialised, header=post_meta_header(raw)).status_code == 403
    assert post_meta(server, raw, secret="wrong").status_code == 403
    assert post_meta(server, raw, header="").status_code == 403
    assert post_meta(server, raw[:-1] + b" ", header=post_meta_header(raw)).status_code == 403
    assert events(server, first["id"]) == ["queued", "sent"]

    accepted = post_meta(server, raw)
    assert accepted.status_code == 200
    assert accepted.json() == {"received": 3, "inbound_messages": 1, "inbound_recorded": 1}
    assert events(server, first["id"]) == ["queued", "sent", "read"]
    with server.client() as client:
        failed = client.get(f"/conversa/messages/{second['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "131026"
    # Meta retries for days: the same delivery again changes nothing and is still 200.
    assert post_meta(server, raw).status_code == 200
    assert events(server, first["id"]) == ["queued", "sent", "read"]
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'conversa_webhook_inbound_messages_total{provider="whatsapp_cloud"} 2.0' in metrics

    hub = f"{server.base_url}/conversa/webhooks/whatsapp_cloud"
    ok = httpx.get(
        hub,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {},
    ):
        assert httpx.get(hub, params=params).status_code == 403


def post_meta_header(raw: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def test_bad_requests_never_get_a_5xx(server: Server) -> None:
    base = f"{server.base_url}/conversa/webhooks"
    assert httpx.post(f"{base}/sinch", content=b"{}").status_code == 404
    assert httpx.get(f"{base}/sinch").status_code == 404
    assert httpx.get(f"{base}/twilio").status_code == 405
    assert httpx.get(f"{base}/africastalking").status_code == 405
    assert httpx.get(f"{base}/vonage").status_code == 400  # no parameters at all
    assert httpx.post(f"{base}/vonage", content=b"{}").status_code == 403  # no secret here
    assert post_meta(server, b"not json").status_code == 400
    assert post_meta(server, b'{"object": "page", "entry": []}').status_code == 400
    huge = (
        b'{"object": "whatsapp_business_account", "entry": [], "pad": "'
        + b"x" * (1024 * 1024)
        + b'"}'
    )
    assert post_meta(server, huge).status_code == 413
    assert "Traceback" not in server.output()


def test_two_hundred_concurrent_reports_leave_a_consistent_history(server: Server) -> None:
    message = send(server)
    statuses = (["sent", "delivered", "read"] * 67)[:200]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda s: twilio_callback(server, message, s), statuses))
    assert [r.status_code for r in responses] == [200] * 200
    history = events(server, message["id"])
    assert history[:2] == ["queued", "sent"] and history[-1] == "read"
    assert history.count("read") == 1 and history.count("delivered") <= 1


def test_without_secrets_every_webhook_is_refused(postgres_url: str, tmp_path: Path) -> None:
    with running_server(postgres_url, tmp_path, webhook_base_url=PUBLIC) as bare:
        message = {
            "id": "00000000-0000-0000-0000-000000000001",
            "provider_message_id": "SM" + "0" * 32,
        }
        assert twilio_callback(bare, message, "delivered").status_code == 403
        raw = json.dumps(meta_payload()).encode()
        assert post_meta(bare, raw).status_code == 403
        hub = f"{bare.base_url}/conversa/webhooks/whatsapp_cloud"
        params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        assert httpx.get(hub, params=params).status_code == 403
