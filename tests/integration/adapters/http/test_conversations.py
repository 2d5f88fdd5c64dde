"""Two-way messaging through the API, on SQLite and PostgreSQL: a scripted exchange (a
send, the contact's answer, our reply to it, status reports for both outbound messages)
makes one conversation holding the four messages in order, with the right window; the
list filters by direction; the window check refuses a free-form body out of the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import StatusReport
from conversa.app.settings import Settings
from conversa.domain.inbound import conversation_id_for
from conversa.domain.status import Status
from tests.fakes.inbound import (
    BUSINESS,
    CONTACT,
    meta_message,
    meta_messages,
    meta_request,
    twilio_incoming,
    twilio_request,
)
from tests.fakes.providers import (
    TWILIO_SID,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeProvider,
    FakeTwilio,
    FakeWhatsAppCloud,
    meta_error,
)
from tests.integration.adapters.http.conftest import (
    APP_SECRET,
    PUBLIC,
    TWILIO_TOKEN,
    Api,
    running_api,
)
from tests.support import make_settings


@pytest.fixture
def settings(backend_url: str) -> Settings:
    return make_settings(
        backend_url,
        rate_limit="1000000/minute",
        webhook_base_url=PUBLIC,
        whatsapp_app_secret=APP_SECRET,
        twilio_token=TWILIO_TOKEN,
    )


def project(api: Api) -> None:
    api.service.projector().catch_up()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def report(api: Api, message_id: str, status: Status) -> None:
    api.service.record_report(
        StatusReport(
            provider="log",
            provider_message_id=None,
            message_id=UUID(message_id),
            status=status,
            raw_status=status.value,
        )
    )


def test_a_scripted_exchange_is_one_conversation_in_order(api: Api) -> None:
    first = api.post(
        "/conversa/messages",
        json={"channel": "whatsapp", "to": CONTACT, "from": BUSINESS, "body": "Your order?"},
        headers=api.auth,
    )
    assert first.status_code == 201, first.text
    answer = meta_messages(meta_message("wamid.ANSWER", "text", {"body": "Where is it?"}))
    posted = api.post(
        "/conversa/webhooks/whatsapp_cloud",
        content=answer,
        headers=meta_request(APP_SECRET, answer),
    )
    assert posted.status_code == 200, posted.text
    project(api)
    inbound = api.get("/conversa/messages?direction=inbound", headers=api.auth).json()
    assert inbound["meta"]["total"] == 1
    [received] = inbound["data"]
    assert received["direction"] == "inbound"
    assert received["status"] == "received"
    assert (received["from"], received["to"]) == (CONTACT, BUSINESS)
    assert received["body"] == "Where is it?"

    reply = api.post(
        "/conversa/messages",
        json={"reply_to": received["id"], "body": "On its way"},
        headers=api.auth,
    )
    assert reply.status_code == 201, reply.text
    replied = reply.json()
    assert (replied["channel"], replied["to"], replied["from"]) == ("whatsapp", CONTACT, BUSINESS)
    assert replied["reply_to"] == received["id"]
    assert replied["conversation_id"] == received["conversation_id"]

    report(api, first.json()["id"], Status.DELIVERED)
    report(api, replied["id"], Status.READ)
    project(api)

    listed = api.get("/conversa/conversations", headers=api.auth).json()
    assert listed["meta"]["total"] == 1
    [conversation] = listed["data"]
    assert conversation["id"] == received["conversation_id"]
    assert (conversation["channel"], conversation["contact"], conversation["business_number"]) == (
        "whatsapp",
        CONTACT,
        BUSINESS,
    )
    assert (conversation["inbound_count"], conversation["outbound_count"]) == (1, 2)
    assert conversation["last_inbound_at"] == received["created_at"]
    assert parse(conversation["window_expires_at"]) == parse(received["created_at"]) + timedelta(
        hours=24
    )
    assert conversation["last_message_at"] == replied["created_at"]

    shown = api.get(f"/conversa/conversations/{conversation['id']}", headers=api.auth).json()
    assert [(m["id"], m["direction"], m["status"]) for m in shown["messages"]] == [
        (first.json()["id"], "outbound", "delivered"),
        (received["id"], "inbound", "received"),
        (replied["id"], "outbound", "read"),
    ]
    assert shown["meta"]["total"] == 3
    paged = api.get(
        f"/conversa/conversations/{conversation['id']}?page=2&per_page=2", headers=api.auth
    ).json()
    assert [m["id"] for m in paged["messages"]] == [replied["id"]]

    # Filters.
    by_contact = api.get(
        f"/conversa/conversations?contact={quote(CONTACT)}&channel=whatsapp", headers=api.auth
    ).json()
    assert [c["id"] for c in by_contact["data"]] == [conversation["id"]]
    assert (
        api.get("/conversa/conversations?channel=sms", headers=api.auth).json()["meta"]["total"]
        == 0
    )
    outbound = api.get("/conversa/messages?direction=outbound", headers=api.auth).json()
    assert outbound["meta"]["total"] == 2
    assert api.get("/conversa/messages?direction=sideways", headers=api.auth).status_code == 422
    shown_inbound = api.get(f"/conversa/messages/{received['id']}", headers=api.auth).json()
    assert shown_inbound["events"][0]["type"] == "received"
    assert api.get("/conversa/conversations/nope", headers=api.auth).status_code == 404

    # A rebuild gives the same conversations.
    before = api.service.view.all_conversations()
    with api.service.backend.projection_lock() as acquired:
        assert acquired
        api.service.projector().rebuild()
    assert api.service.view.all_conversations() == before


def test_a_reply_must_name_an_inbound_message(api: Api) -> None:
    sent = api.post(
        "/conversa/messages", json={"channel": "sms", "to": CONTACT, "body": "hi"}, headers=api.auth
    )
    for reply_to in ("not-an-id", sent.json()["id"]):
        response = api.post(
            "/conversa/messages", json={"reply_to": reply_to, "body": "x"}, headers=api.auth
        )
        assert response.status_code == 422, response.text
        assert "reply_to" in response.json()["error"]["fields"]


def test_a_reply_may_be_queued_or_batched(api: Api) -> None:
    answer = meta_messages(meta_message("wamid.LATER", "text", {"body": "Any news?"}))
    posted = api.post(
        "/conversa/webhooks/whatsapp_cloud",
        content=answer,
        headers=meta_request(APP_SECRET, answer),
    )
    assert posted.status_code == 200, posted.text
    project(api)
    [received] = api.get("/conversa/messages?direction=inbound", headers=api.auth).json()["data"]
    queued = api.post(
        "/conversa/messages",
        json={"reply_to": received["id"], "body": "Tomorrow"},
        headers={**api.auth, "Prefer": "respond-async"},
    )
    assert queued.status_code == 202, queued.text
    batch = api.post(
        "/conversa/messages/batch",
        json={"messages": [{"reply_to": received["id"], "body": "Or today"}]},
        headers=api.auth,
    )
    assert batch.status_code == 202, batch.text
    [item] = batch.json()["data"]
    assert item["status"] == 201, item
    for message in (queued.json(), item["message"]):
        assert message["status"] == "queued"
        assert (message["channel"], message["to"], message["from"]) == (
            "whatsapp",
            CONTACT,
            BUSINESS,
        )
        assert message["reply_to"] == received["id"]
        assert message["conversation_id"] == received["conversation_id"]


def test_the_window_check_refuses_free_form_bodies_outside_the_window(backend_url: str) -> None:
    settings = make_settings(
        backend_url,
        rate_limit="1000000/minute",
        whatsapp_app_secret=APP_SECRET,
        whatsapp_window_check="true",
    )
    migrate(settings)
    with bootstrap(settings) as service, running_api(service) as api:
        body = {"channel": "whatsapp", "to": CONTACT, "body": "hello"}
        refused = api.post("/conversa/messages", json=body, headers=api.auth)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "outside_customer_service_window"
        assert api.get("/conversa/messages", headers=api.auth).json()["meta"]["total"] == 0
        template = {"channel": "whatsapp", "to": CONTACT, "template": {"name": "hello"}}
        assert api.post("/conversa/messages", json=template, headers=api.auth).status_code == 201
        answer = meta_messages(meta_message("wamid.W", "text", {"body": "hi"}))
        api.post(
            "/conversa/webhooks/whatsapp_cloud",
            content=answer,
            headers=meta_request(APP_SECRET, answer),
        )
        service.projector().catch_up()
        assert api.post("/conversa/messages", json=body, headers=api.auth).status_code == 201
        # Out of the window once 24 hours have passed.
        later = service.clock() + timedelta(hours=24, seconds=1)
        service.clock = lambda: later
        refused = api.post("/conversa/messages", json=body, headers=api.auth)
        assert refused.status_code == 422


# A send without ``from``: the driver says which number it used, and the contact's answer
# lands in the same conversation. Through real drivers talking to fake providers over
# loopback, with signed webhooks for the answer and the status reports.

TWILIO_WHATSAPP = "whatsapp:"


@dataclass(frozen=True)
class Route:
    """One provider and channel of the exchange."""

    name: str
    channel: str
    driver: str

    def settings(self, backend_url: str, fake: FakeProvider) -> Settings:
        common = {
            "rate_limit": "1000000/minute",
            "webhook_base_url": PUBLIC,
            "whatsapp_app_secret": APP_SECRET,
            "twilio_token": TWILIO_TOKEN,
        }
        if self.driver == "whatsapp_cloud":
            return make_settings(
                backend_url,
                whatsapp_driver="whatsapp_cloud",
                whatsapp_phone_id=WHATSAPP_PHONE_ID,
                whatsapp_token=WHATSAPP_TOKEN,
                whatsapp_api_base=fake.url,
                **common,
            )
        return make_settings(
            backend_url,
            sms_driver="twilio",
            whatsapp_driver="twilio",
            twilio_sid=TWILIO_SID,
            twilio_sms_from=BUSINESS,
            twilio_whatsapp_from=TWILIO_WHATSAPP + BUSINESS,
            twilio_api_base=fake.url,
            **common,
        )

    def fake(self) -> FakeProvider:
        if self.driver == "whatsapp_cloud":
            return FakeWhatsAppCloud()
        return FakeTwilio(auth_token=TWILIO_TOKEN)

    def answer(self, api: Api, provider_id: str, body: str) -> httpx.Response:
        """The contact's message, as the provider's signed webhook brings it."""
        if self.driver == "whatsapp_cloud":
            raw = meta_messages(meta_message(provider_id, "text", {"body": body}))
            return api.post(
                "/conversa/webhooks/whatsapp_cloud",
                content=raw,
                headers=meta_request(APP_SECRET, raw),
            )
        addresses = (
            {"From": TWILIO_WHATSAPP + CONTACT, "To": TWILIO_WHATSAPP + BUSINESS}
            if self.channel == "whatsapp"
            else {}
        )
        form = twilio_incoming(provider_id, body, **addresses)
        content, headers = twilio_request(TWILIO_TOKEN, PUBLIC, form)
        return api.post("/conversa/webhooks/twilio", content=content, headers=headers)

    def report(self, api: Api, message: dict[str, Any], status: str) -> httpx.Response:
        """The provider's signed status report for one of our messages."""
        if self.driver == "whatsapp_cloud":
            state = {
                "id": message["provider_message_id"],
                "status": status,
                "timestamp": "1749416400",
                "recipient_id": CONTACT[1:],
                "biz_opaque_callback_data": message["id"],
            }
            raw = meta_messages(statuses=[state])
            return api.post(
                "/conversa/webhooks/whatsapp_cloud",
                content=raw,
                headers=meta_request(APP_SECRET, raw),
            )
        prefix = TWILIO_WHATSAPP if self.channel == "whatsapp" else ""
        form = [
            ("AccountSid", TWILIO_SID),
            ("From", prefix + BUSINESS),
            ("MessageSid", message["provider_message_id"]),
            ("MessageStatus", status),
            ("To", prefix + CONTACT),
        ]
        path = f"/conversa/webhooks/twilio?message_id={message['id']}"
        content, headers = twilio_request(TWILIO_TOKEN, PUBLIC, form, path=path)
        return api.post(path, content=content, headers=headers)


ROUTES = [
    Route("twilio-sms", "sms", "twilio"),
    Route("twilio-whatsapp", "whatsapp", "twilio"),
    Route("meta", "whatsapp", "whatsapp_cloud"),
]


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_a_send_without_from_and_the_answers_are_one_conversation(
    backend_url: str, route: Route
) -> None:
    with route.fake() as fake:
        settings = route.settings(backend_url, fake)
        migrate(settings)
        with bootstrap(settings) as service, running_api(service) as api:
            expected = str(conversation_id_for(route.channel, BUSINESS, CONTACT))
            first = api.post(
                "/conversa/messages",
                json={"channel": route.channel, "to": CONTACT, "body": "Your order shipped"},
                headers=api.auth,
            )
            assert first.status_code == 201, first.text
            sent = first.json()
            assert sent["status"] == "sent"
            # No "from" was given: the driver's own sender is the message's.
            assert (sent["from"], sent["conversation_id"]) == (BUSINESS, expected)

            assert route.answer(api, f"{route.name}-in-1", "Where is it?").status_code == 200
            project(api)
            [received] = api.get("/conversa/messages?direction=inbound", headers=api.auth).json()[
                "data"
            ]
            assert received["conversation_id"] == expected

            reply = api.post(
                "/conversa/messages",
                json={"reply_to": received["id"], "body": "At the depot"},
                headers=api.auth,
            )
            assert reply.status_code == 201, reply.text
            replied = reply.json()
            assert (replied["from"], replied["conversation_id"]) == (BUSINESS, expected)

            for message in (sent, replied):
                assert route.report(api, message, "delivered").status_code == 200
            assert route.answer(api, f"{route.name}-in-2", "Thanks").status_code == 200
            project(api)

            listed = api.get("/conversa/conversations", headers=api.auth).json()
            assert listed["meta"]["total"] == 1, listed
            [conversation] = listed["data"]
            assert conversation["id"] == expected
            assert (conversation["contact"], conversation["business_number"]) == (
                CONTACT,
                BUSINESS,
            )
            assert (conversation["inbound_count"], conversation["outbound_count"]) == (2, 2)
            thread = api.get(f"/conversa/conversations/{expected}", headers=api.auth).json()
            assert [(m["direction"], m["status"], m.get("body")) for m in thread["messages"]] == [
                ("outbound", "delivered", "Your order shipped"),
                ("inbound", "received", "Where is it?"),
                ("outbound", "delivered", "At the depot"),
                ("inbound", "received", "Thanks"),
            ]
            last = thread["messages"][-1]
            assert conversation["last_inbound_at"] == last["created_at"]
            assert conversation["last_message_at"] == last["created_at"]
            if route.channel == "whatsapp":
                assert parse(conversation["window_expires_at"]) == parse(
                    last["created_at"]
                ) + timedelta(hours=24)
            else:
                assert conversation["window_expires_at"] is None

            if isinstance(fake, FakeWhatsAppCloud):
                # Meta's display number, looked up once and kept.
                assert [lookup.query for lookup in fake.lookups] == [
                    {"fields": ["display_phone_number"]}
                ]
            # A rebuild gives the same conversations and rows.
            rows, before = service.view.all_rows(), service.view.all_conversations()
            with service.backend.projection_lock() as acquired:
                assert acquired
                service.projector().rebuild()
            assert service.view.all_conversations() == before
            assert service.view.all_rows() == rows


def test_a_queued_send_without_from_moves_to_its_conversation_once_sent(
    backend_url: str,
) -> None:
    route = ROUTES[0]  # Twilio SMS
    with route.fake() as fake:
        settings = route.settings(backend_url, fake)
        migrate(settings)
        with bootstrap(settings) as service, running_api(service) as api:
            queued = api.post(
                "/conversa/messages",
                json={"channel": "sms", "to": CONTACT, "body": "Your code is 8351"},
                headers={**api.auth, "Prefer": "respond-async"},
            )
            assert queued.status_code == 202, queued.text
            message = queued.json()
            # Not sent yet: no number known, so the conversation has no business number.
            unknown = str(conversation_id_for("sms", None, CONTACT))
            assert (message["from"], message["conversation_id"]) == (None, unknown)
            project(api)
            [waiting] = api.get("/conversa/conversations", headers=api.auth).json()["data"]
            assert (waiting["id"], waiting["business_number"]) == (unknown, None)
            with service.running():
                pass  # leaving waits until the dispatcher has sent what was queued
            project(api)
            expected = str(conversation_id_for("sms", BUSINESS, CONTACT))
            shown = api.get(f"/conversa/messages/{message['id']}", headers=api.auth).json()
            assert (shown["status"], shown["from"]) == ("sent", BUSINESS)
            assert shown["conversation_id"] == expected
            assert route.answer(api, "SM-moved-answer", "Thanks").status_code == 200
            project(api)
            # Moved, counted once; the conversation it left has no message, so it goes.
            listed = api.get("/conversa/conversations", headers=api.auth).json()
            assert [
                (c["id"], c["business_number"], c["outbound_count"], c["inbound_count"])
                for c in listed["data"]
            ] == [(expected, BUSINESS, 1, 1)]
            [row] = api.get("/conversa/messages?direction=outbound", headers=api.auth).json()[
                "data"
            ]
            assert (row["from"], row["conversation_id"]) == (BUSINESS, expected)
            before = service.view.all_conversations()
            with service.backend.projection_lock() as acquired:
                assert acquired
                service.projector().rebuild()
            assert service.view.all_conversations() == before


def test_a_failed_display_number_lookup_does_not_fail_the_send(backend_url: str) -> None:
    route = ROUTES[2]  # Meta
    with route.fake() as fake:
        assert isinstance(fake, FakeWhatsAppCloud)
        fake.lookup_reply = meta_error(190, "Error validating access token", status=401)
        settings = route.settings(backend_url, fake)
        migrate(settings)
        with bootstrap(settings) as service, running_api(service) as api:
            sent = api.post(
                "/conversa/messages",
                json={"channel": "whatsapp", "to": CONTACT, "body": "Hello"},
                headers=api.auth,
            )
            assert sent.status_code == 201, sent.text
            message = sent.json()
            assert (message["status"], message["from"]) == ("sent", None)
            assert message["conversation_id"] == str(conversation_id_for("whatsapp", None, CONTACT))
            assert len(fake.lookups) == 1
