"""Two-way messaging through the API, on SQLite and PostgreSQL: a scripted exchange (a
send, the contact's answer, our reply to it, status reports for both outbound messages)
makes one conversation holding the four messages in order, with the right window; the
list filters by direction; the window check refuses a free-form body out of the window."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import StatusReport
from conversa.app.settings import Settings
from conversa.domain.status import Status
from tests.fakes.inbound import BUSINESS, CONTACT, meta_message, meta_messages, meta_request
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
