"""A WhatsApp message's fallback on the Message aggregate: asked for when it is recorded,
recorded once, and no obstacle to taking over its first attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from conversa.domain.channel import Channel
from conversa.domain.message import Message
from tests.support import queued_message
from tests.unit.domain.test_message import replay

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def recorded_with_fallback() -> Message:
    message = queued_message(channel="whatsapp")
    message.nonce = "n"
    message.request_fallback(Channel.SMS, NOW + timedelta(seconds=600), None)
    return message


def test_a_fallback_is_recorded_once_and_replays() -> None:
    message = recorded_with_fallback()
    assert message.fallback == (Channel.SMS, NOW + timedelta(seconds=600), None)
    assert message.recorded_version == 2
    sms = uuid4()
    assert message.record_fallback(sms, "not delivered in time")
    assert not message.record_fallback(uuid4(), "again")
    events = message.collect_events()
    assert [type(e).__name__ for e in events] == ["Queued", "FallbackRequested", "FellBack"]
    replayed = replay(events)
    assert replayed.fallback_message_id == sms and replayed.recorded_version == 2
    assert not queued_message().record_fallback(sms, "none asked for")


def test_the_first_attempt_of_a_message_with_a_fallback_can_be_taken_over() -> None:
    message = recorded_with_fallback()
    assert message.take_over_first_attempt("n", NOW)
    late = recorded_with_fallback()
    late.claim_attempt(NOW, NOW)  # not due: nothing recorded
    late.record_retry("x", "y", NOW)
    assert not late.take_over_first_attempt("n", NOW)  # something happened since


def test_a_fallback_knows_what_it_is_the_fallback_of() -> None:
    original = uuid4()
    sms = queued_message()
    sms.mark_fallback_of(original)
    assert sms.fallback_of == original and sms.recorded_version == 2
