"""A reply goes to the inbound message's sender, on its channel, from the number it reached;
WhatsApp Cloud quotes the message it answers (``context.message_id``), on both stores."""

from __future__ import annotations

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
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
