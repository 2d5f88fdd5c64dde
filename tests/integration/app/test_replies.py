"""A reply goes to the inbound message's sender, on its channel, from the number it reached;
WhatsApp Cloud quotes the message it answers (``context.message_id``), on both stores."""

from __future__ import annotations

from uuid import uuid4

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidRequest, OutsideServiceWindow
from conversa.domain.inbound import conversation_id_for, inbound_message_id_for
from tests.fakes.inbound import BUSINESS, CONTACT
from tests.fakes.providers import WHATSAPP_PHONE_ID, WHATSAPP_TOKEN, FakeWhatsAppCloud
from tests.support import make_settings


def test_a_whatsapp_cloud_reply_quotes_the_message_it_answers(backend_url: str) -> None:
    with FakeWhatsAppCloud() as meta:
        settings = make_settings(
            backend_url,
            whatsapp_driver="whatsapp_cloud",
            whatsapp_phone_id=WHATSAPP_PHONE_ID,
            whatsapp_token=WHATSAPP_TOKEN,
            whatsapp_api_base=meta.url,
            whatsapp_window_check="true",
        )
        migrate(settings)
        with bootstrap(settings) as service:
            service.record_inbound(
                InboundReport(
                    provider="whatsapp_cloud",
                    provider_message_id="wamid.QUESTION",
                    channel=Channel.WHATSAPP,
                    sender=CONTACT,
                    recipient=BUSINESS,
                    body="When does it arrive?",
                )
            )
            inbound_id = inbound_message_id_for("whatsapp_cloud", "wamid.QUESTION")
            # Within the window by the message it answers, before any projection ran.
            result = service.send(
                None,  # type: ignore[arg-type] # a reply takes the channel of its message
                None,  # type: ignore[arg-type]
                {"body": "Tomorrow"},
                {"reply_to": str(inbound_id)},
            )
            assert result.ok, result.error
            [sent] = meta.sent
            assert sent["to"] == CONTACT
            assert sent["context"] == {"message_id": "wamid.QUESTION"}
            message = service.get_message(result.message_id)
            assert (message.channel, message.to, message.sender) == ("whatsapp", CONTACT, BUSINESS)
            assert message.reply_to == inbound_id
            assert message.conversation_id == conversation_id_for("whatsapp", BUSINESS, CONTACT)
            # A plain send quotes nothing; the window is open (the contact wrote).
            service.projector().catch_up()
            other = service.send("whatsapp", CONTACT, {"body": "Anything else?"})
            assert other.ok
            assert "context" not in meta.sent[1]


def test_replies_queued_for_the_dispatcher_and_in_a_batch(backend_url: str) -> None:
    """``reply_to`` with ``queue`` (``Prefer: respond-async``) and in batch items: routed
    and quoted as a synchronous reply is, sent by the dispatcher; a bad one refused alone."""
    with FakeWhatsAppCloud() as meta:
        settings = make_settings(
            backend_url,
            whatsapp_driver="whatsapp_cloud",
            whatsapp_phone_id=WHATSAPP_PHONE_ID,
            whatsapp_token=WHATSAPP_TOKEN,
            whatsapp_api_base=meta.url,
            dispatch_poll_seconds="600",
        )
        migrate(settings)
        with bootstrap(settings) as service:
            service.record_inbound(
                InboundReport(
                    provider="whatsapp_cloud",
                    provider_message_id="wamid.ASYNC",
                    channel=Channel.WHATSAPP,
                    sender=CONTACT,
                    recipient=BUSINESS,
                    body="Is it in stock?",
                )
            )
            inbound_id = str(inbound_message_id_for("whatsapp_cloud", "wamid.ASYNC"))
            conversation = conversation_id_for("whatsapp", BUSINESS, CONTACT)
            queued = service.queue(
                None,  # type: ignore[arg-type] # a reply takes the channel of its message
                None,  # type: ignore[arg-type]
                {"body": "Yes"},
                {"reply_to": inbound_id},
            )
            assert queued.status == "queued"
            shown = queued.message
            assert (shown.channel, shown.to, shown.sender) == ("whatsapp", CONTACT, BUSINESS)
            assert (str(shown.reply_to), shown.conversation_id) == (inbound_id, conversation)

            [batched, unknown, elsewhere] = service.send_batch(
                [
                    {"reply_to": inbound_id, "body": "Two left", "idempotency_key": "r1"},
                    {"reply_to": str(uuid4()), "body": "x"},
                    {"reply_to": inbound_id, "channel": "sms", "body": "x"},
                ]
            )
            assert batched.result is not None, batched.error
            assert str(batched.result.message.reply_to) == inbound_id
            assert batched.result.message.to == CONTACT
            assert isinstance(unknown.error, InvalidRequest)
            assert unknown.error.field == "reply_to"
            assert isinstance(elsewhere.error, InvalidRequest)
            assert elsewhere.error.field == "channel"

            with service.running():
                pass  # leaving waits until the dispatcher has sent what was queued
            for result in (queued, batched.result):
                assert service.get_message(result.message_id).status == "sent"
            assert sorted(body["text"]["body"] for body in meta.sent) == ["Two left", "Yes"]
            assert [body["context"] for body in meta.sent] == [{"message_id": "wamid.ASYNC"}] * 2
            assert all(body["to"] == CONTACT for body in meta.sent)


def test_the_service_window_is_checked_on_queued_and_batched_sends(backend_url: str) -> None:
    """With the window check on, a free-form WhatsApp body to a contact who never wrote is
    refused before anything is stored, however it is sent; a template goes out."""
    settings = make_settings(backend_url, whatsapp_window_check="true", dispatch_poll_seconds="600")
    migrate(settings)
    with bootstrap(settings) as service:
        before = service.app.recorder.max_notification_id()
        body = {"body": "Hello, are you there?"}
        try:
            service.queue("whatsapp", CONTACT, body)
        except OutsideServiceWindow as refused:
            assert refused.field == "body"
        else:
            raise AssertionError("a queued body outside the window was accepted")
        [outside, template] = service.send_batch(
            [
                {"channel": "whatsapp", "to": CONTACT, **body},
                {"channel": "whatsapp", "to": CONTACT, "template": {"name": "hello"}},
            ]
        )
        assert isinstance(outside.error, OutsideServiceWindow)
        assert outside.error.code == "outside_customer_service_window"
        assert template.result is not None and template.result.status == "queued"
        # Only the template was recorded.
        assert service.app.recorder.max_notification_id() == (before or 0) + 1
