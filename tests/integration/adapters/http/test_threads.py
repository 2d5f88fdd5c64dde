"""Threads of messages sent without ``from``, on SQLite and PostgreSQL, through real
drivers talking to fake providers over loopback (Twilio SMS, Twilio WhatsApp, Meta), with
signed webhooks for the contact's answers and the status reports: the driver says which
number it sent from, so the send, the answers and the reply make one conversation; a
queued send moves to its conversation once sent; a failed lookup of Meta's display
number does not fail a send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.settings import Settings
from conversa.domain.inbound import conversation_id_for
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


def project(api: Api) -> None:
    api.service.projector().catch_up()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


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
