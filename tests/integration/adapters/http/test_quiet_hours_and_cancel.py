"""Quiet hours and cancelling through the HTTP API, with a fixed clock: marketing sends to
numbers in several countries (one spanning many zones) deferred to the right instant,
transactional ones sent at once, then sent when due, and cancelled ones never."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, running
from tests.integration.adapters.http.conftest import Api, running_api
from tests.support import make_settings

#: Monday 7 December 2026, 12:00 UTC.
NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BERLIN = "+4915112345678"  # 13:00: allowed
NEW_YORK = "+12125550100"  # 07:00: quiet until 08:00 EST, 13:00 UTC
TOKYO = "+81312345678"  # 21:00: quiet until 08:00 JST, 23:00 UTC
#: Moscow to Kamchatka (UTC+2 to UTC+12): midnight in Kamchatka; allowed everywhere once
#: Bucharest's zone reaches 08:00, 06:00 UTC.
RUSSIAN_MOBILE = "+79161234567"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: NOON)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def quiet_api(backend_url: str, twilio: FakeTwilio, clock: Clock) -> Iterator[Api]:
    settings = make_settings(
        backend_url,
        quiet_hours="21:00-08:00",
        rate_limit="1000000/minute",
        sms_driver="twilio",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
    )
    migrate(settings)
    with bootstrap(settings, clock=clock) as service, running_api(service) as api:
        yield api


def send(api: Api, to: str, category: str | None = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": "sms", "to": to, "body": "Winter sale: 20% off"}
    if category is not None:
        body["category"] = category
    response = api.post("/conversa/messages", json={**body, **more}, headers=api.auth)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def tick(service: ConversaService) -> int:
    service.projector().catch_up()
    return service.dispatcher.dispatch_due()


def test_marketing_waits_for_the_recipients_morning_and_transactional_goes_at_once(
    quiet_api: Api, twilio: FakeTwilio, clock: Clock
) -> None:
    api = quiet_api
    berlin = send(api, BERLIN, "marketing")
    assert (berlin["status"], berlin["scheduled_at"], berlin["category"]) == (
        "sent",
        None,
        "marketing",
    )
    assert twilio.calls == 1

    deferred = {
        NEW_YORK: "2026-12-07T13:00:00Z",
        TOKYO: "2026-12-07T23:00:00Z",
        RUSSIAN_MOBILE: "2026-12-08T06:00:00Z",
    }
    ids = {}
    for number, expected in deferred.items():
        message = send(api, number, "marketing")
        assert (message["status"], message["scheduled_at"]) == ("queued", expected), number
        ids[number] = message["id"]
    # The same recipients, transactional (the default, and said): at once.
    for number in deferred:
        assert send(api, number)["status"] == "sent"
        assert send(api, number, "transactional")["scheduled_at"] is None
    assert twilio.calls == 7

    # Asynchronous and batch sends are deferred alike.
    response = api.post(
        "/conversa/messages",
        json={"channel": "sms", "to": NEW_YORK, "body": "Sale", "category": "marketing"},
        headers={**api.auth, "Prefer": "respond-async"},
    )
    assert response.status_code == 202
    assert response.json()["scheduled_at"] == deferred[NEW_YORK]
    batch = api.post(
        "/conversa/messages/batch",
        json={
            "messages": [
                {"channel": "sms", "to": TOKYO, "body": "Sale", "category": "marketing"},
                {"channel": "sms", "to": TOKYO, "body": "Your code is 1234"},
            ]
        },
        headers=api.auth,
    )
    marketing, transactional = (item["message"] for item in batch.json()["data"])
    assert (marketing["status"], marketing["scheduled_at"]) == ("queued", deferred[TOKYO])
    assert (transactional["status"], transactional["scheduled_at"]) == ("queued", None)

    # A send_at inside quiet hours moves on to the morning after it: 23:30 UTC is 00:30
    # in Berlin; 08:00 there is 07:00 UTC.
    late = send(api, BERLIN, "marketing", send_at="2026-12-07T23:30:00Z")
    assert late["scheduled_at"] == "2026-12-08T07:00:00Z"

    service = api.service
    service.projector().catch_up()
    listed = api.get("/conversa/messages?status=queued&per_page=100", headers=api.auth).json()
    assert {m["id"]: m["scheduled_at"] for m in listed["data"] if m["id"] in ids.values()} == {
        ids[number]: at for number, at in deferred.items()
    }
    shown = api.get(f"/conversa/messages/{ids[TOKYO]}", headers=api.auth).json()
    assert shown["events"][0]["scheduled_at"] == deferred[TOKYO]
    assert shown["events"][0]["category"] == "marketing"

    # At 13:00 UTC New York's two go (and the batch's transactional message, which no
    # drain runs here to send at once: the due scan's recovery); the others wait.
    calls = twilio.calls
    clock.now = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    assert tick(service) == 3
    assert twilio.calls == calls + 3
    for message_id in (ids[NEW_YORK], response.json()["id"], transactional["id"]):
        assert service.get_message(message_id).status == "sent"
    assert service.get_message(ids[TOKYO]).status == "queued"
    assert service.get_message(marketing["id"]).status == "queued"


def test_cancel_through_the_api(quiet_api: Api, twilio: FakeTwilio, clock: Clock) -> None:
    api = quiet_api
    tokyo = send(api, TOKYO, "marketing")
    cancelled = api.post(f"/conversa/messages/{tokyo['id']}/cancel", headers=api.auth)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["scheduled_at"]) == (
        "cancelled",
        "2026-12-07T23:00:00Z",
    )
    again = api.post(f"/conversa/messages/{tokyo['id']}/cancel", headers=api.auth)
    assert (again.status_code, again.json()) == (200, cancelled.json())

    sent = send(api, TOKYO)
    refused = api.post(f"/conversa/messages/{sent['id']}/cancel", headers=api.auth)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "already_attempted"
    for unknown in (str(uuid4()), "not-an-id"):
        missing = api.post(f"/conversa/messages/{unknown}/cancel", headers=api.auth)
        assert missing.status_code == 404
    assert api.post(f"/conversa/messages/{tokyo['id']}/cancel").status_code == 401

    clock.now = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
    assert tick(api.service) == 0
    assert twilio.calls == 1  # the transactional one
    shown = api.get(f"/conversa/messages/{tokyo['id']}", headers=api.auth).json()
    assert [event["type"] for event in shown["events"]] == ["queued", "cancelled"]
    listed = api.get("/conversa/messages?status=cancelled", headers=api.auth).json()
    assert [m["id"] for m in listed["data"]] == [tokyo["id"]]
    assert listed["meta"]["total"] == 1


def test_a_replayed_scheduled_send_answers_the_scheduled_message(
    quiet_api: Api, twilio: FakeTwilio
) -> None:
    api = quiet_api
    request = {
        "channel": "sms",
        "to": BERLIN,
        "body": "Your appointment is tomorrow at 10:00",
        "send_at": "2026-12-08T08:00:00+01:00",
    }
    headers = {**api.auth, "Idempotency-Key": "reminder-42"}
    first = api.post("/conversa/messages", json=request, headers=headers)
    assert first.status_code == 201
    assert (first.json()["status"], first.json()["scheduled_at"]) == (
        "queued",
        "2026-12-08T07:00:00Z",
    )
    again = api.post("/conversa/messages", json=request, headers=headers)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # The same key for another time is another request.
    moved = api.post(
        "/conversa/messages",
        json={**request, "send_at": "2026-12-08T09:00:00+01:00"},
        headers=headers,
    )
    assert moved.status_code == 422
    assert moved.json()["error"]["code"] == "idempotency_key_mismatch"
    assert twilio.calls == 0
