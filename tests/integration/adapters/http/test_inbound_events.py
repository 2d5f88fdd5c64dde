"""``message.received`` reaches subscribers and the SSE stream in store order; with
``CONVERSA_STORE_BODY=false`` no inbound body is in any event, row, stream or log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import StatusReport
from conversa.app.service import ConversaService
from conversa.app.subscribers import SubscriberRunner
from conversa.domain.status import Status
from conversa.events import LifecycleEvent, MessageDelivered, MessageReceived, MessageSent
from tests.fakes.inbound import (
    BUSINESS,
    CONTACT,
    meta_message,
    meta_messages,
    meta_request,
    twilio_incoming,
    twilio_request,
)
from tests.integration.adapters.http.conftest import (
    APP_SECRET,
    PUBLIC,
    TWILIO_TOKEN,
    Api,
    running_api,
)
from tests.support import make_settings


def stream(api: Api) -> list[tuple[str, dict[str, object]]]:
    text = api.get("/conversa/events?live=false", headers=api.auth).text
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


def services(backend_url: str, **overrides: str) -> Iterator[ConversaService]:
    settings = make_settings(
        backend_url,
        rate_limit="1000000/minute",
        webhook_base_url=PUBLIC,
        whatsapp_app_secret=APP_SECRET,
        twilio_token=TWILIO_TOKEN,
        **overrides,
    )
    migrate(settings)
    with bootstrap(settings) as service:
        yield service


def test_message_received_reaches_subscribers_and_the_stream_in_store_order(
    backend_url: str,
) -> None:
    for service in services(backend_url):
        with running_api(service) as api:
            received: list[LifecycleEvent] = []
            subscription = service.subscribe(LifecycleEvent, received.append, name="all")
            sent = service.send("whatsapp", CONTACT, {"body": "hi"}, {"from": BUSINESS})
            raw = meta_messages(
                meta_message("wamid.IN", "image", {"id": "m1", "mime_type": "image/png"}),
                meta_message("wamid.IN2", "text", {"body": "and this"}),
            )
            api.post(
                "/conversa/webhooks/whatsapp_cloud",
                content=raw,
                headers=meta_request(APP_SECRET, raw),
            )
            service.record_report(
                StatusReport("log", None, sent.message_id, Status.DELIVERED, "delivered")
            )
            runner = SubscriberRunner(subscription, service.feed, service.subscriber_store)
            while runner.run_once():
                pass
            assert [type(e) for e in received] == [
                MessageSent,
                MessageReceived,
                MessageReceived,
                MessageDelivered,
            ]
            first = received[1]
            assert isinstance(first, MessageReceived)
            assert (first.sender, first.to, first.channel) == (CONTACT, BUSINESS, "whatsapp")
            assert first.media == [{"content_type": "image/png"}]
            assert first.conversation_id is not None
            second = received[2]
            assert isinstance(second, MessageReceived)
            assert second.body == "and this"
            frames = stream(api)
            assert [name for name, _ in frames] == [
                "message.sent",
                "message.received",
                "message.received",
                "message.delivered",
            ]
            data = frames[2][1]
            assert data["from"] == CONTACT
            assert data["to"] == BUSINESS
            assert data["body"] == "and this"
            assert data["conversation_id"] == str(first.conversation_id)


@pytest.mark.parametrize("kind", ["twilio", "meta"])
def test_without_stored_bodies_no_inbound_body_is_anywhere(
    backend_url: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-b0dy-t3xt"
    caplog.set_level(logging.DEBUG)
    for service in services(backend_url, store_body="false"):
        with running_api(service) as api:
            if kind == "twilio":
                form = twilio_incoming("SM" + "5" * 32, body=secret, ButtonText=secret)
                raw, headers = twilio_request(TWILIO_TOKEN, PUBLIC, form)
                response = api.post("/conversa/webhooks/twilio", content=raw, headers=headers)
            else:
                raw = meta_messages(
                    meta_message("wamid.T", "text", {"body": secret}),
                    meta_message(
                        "wamid.I", "image", {"id": "m", "mime_type": "image/png", "caption": secret}
                    ),
                    meta_message("wamid.L", "location", {"latitude": 1, "name": secret}),
                    meta_message(
                        "wamid.B",
                        "interactive",
                        {"type": "list_reply", "list_reply": {"id": "x", "title": secret}},
                    ),
                )
                response = api.post(
                    "/conversa/webhooks/whatsapp_cloud",
                    content=raw,
                    headers=meta_request(APP_SECRET, raw),
                )
            assert response.status_code == 200, response.text
            service.projector().catch_up()
            stored = service.app.recorder.select_notifications(start=1, limit=1000)
            assert any(n.topic.endswith("InboundMessage.Received") for n in stored)
            assert all(secret.encode() not in n.state for n in stored)
            rows = service.view.all_rows()
            assert rows and all(r.direction == "inbound" and r.body is None for r in rows)
            assert secret not in repr(rows)
            listed = api.get("/conversa/messages", headers=api.auth).text
            assert secret not in listed
            assert secret not in api.get("/conversa/events?live=false", headers=api.auth).text
            for row in rows:
                shown = api.get(f"/conversa/messages/{row.id}", headers=api.auth).text
                assert secret not in shown
    assert secret not in caplog.text
