"""The InboundMessage aggregate: one id per provider message, one conversation per
(channel, our number, contact)."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import BaseAggregate

from conversa.domain.channel import Channel
from conversa.domain.inbound import (
    InboundMessage,
    conversation_id_for,
    inbound_message_id_for,
)


def received(sid: str = "SM1", *, sender: str = "+15557654321") -> InboundMessage:
    return InboundMessage.receive(
        provider="twilio",
        provider_message_id=sid,
        channel=Channel.SMS,
        sender=sender,
        recipient="+15550001111",
        body="YES",
        media=[{"content_type": "image/jpeg", "url": "https://api.twilio.com/m/1"}],
    )


def test_the_same_provider_message_always_has_the_same_id() -> None:
    assert received("SM1").id == received("SM1").id == inbound_message_id_for("twilio", "SM1")
    assert received("SM2").id != received("SM1").id
    assert inbound_message_id_for("whatsapp_cloud", "SM1") != inbound_message_id_for(
        "twilio", "SM1"
    )


def test_a_conversation_is_the_channel_our_number_and_the_contact() -> None:
    message = received()
    assert message.conversation_id == conversation_id_for("sms", "+15550001111", "+15557654321")
    assert received("SM2").conversation_id == message.conversation_id
    assert received(sender="+15559999999").conversation_id != message.conversation_id
    assert conversation_id_for("whatsapp", "+15550001111", "+15557654321") != (
        message.conversation_id
    )


def test_received_replays_to_the_same_message() -> None:
    message = received()
    events = message.collect_events()
    assert [type(e) for e in events] == [InboundMessage.Received]
    replayed: BaseAggregate[UUID] | None = None
    for e in events:
        replayed = e.mutate(replayed)
    assert isinstance(replayed, InboundMessage)
    assert replayed.body == "YES"
    assert replayed.channel is Channel.SMS
    assert replayed.media == message.media
    assert replayed.received_at == message.received_at
