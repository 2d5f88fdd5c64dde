"""The Message aggregate: a message's story told as events, and replayed from them."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanMutateAggregate

from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.message import Message, message_id_for
from conversa.domain.status import Status
from tests.support import queued_message


def new_message(key: str | None = "key") -> Message:
    return queued_message(key=key)


def status_of(message: Message) -> Status:
    """The status, read through a call so mypy does not keep an earlier narrowing of it."""
    return message.status


def replay(events: Sequence[CanMutateAggregate[UUID]]) -> Message:
    aggregate: BaseAggregate[UUID] | None = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Message)
    return aggregate


def test_a_message_is_queued_accepted_delivered_and_read() -> None:
    message = new_message()
    assert message.id == message_id_for("scope", "key")
    assert message.channel is Channel.SMS
    assert message.to.e164 == "+15551234567"
    assert status_of(message) is Status.QUEUED
    assert message.attempts == 0
    assert message.provider_message_id is None
    assert message.error is None

    message.record_accepted("SM123", {"sid": "SM123"})
    assert status_of(message) is Status.SENT
    assert message.attempts == 1
    assert message.provider_message_id == "SM123"
    assert message.provider_response == {"sid": "SM123"}

    assert message.record_report(Status.DELIVERED) is True
    assert message.record_report(Status.DELIVERED) is False  # a repeat changes nothing
    assert message.record_report(Status.SENT) is False  # nor does an older status
    assert message.record_report(Status.READ) is True
    assert status_of(message) is Status.READ

    events = message.collect_events()
    assert [type(e) for e in events] == [
        Message.Queued,
        Message.Sent,
        Message.Delivered,
        Message.Read,
    ]
    assert [e.originator_version for e in events] == [1, 2, 3, 4]
    assert all(e.originator_id == message.id for e in events)
    assert message.collect_events() == []  # collected once

    rebuilt = replay(events)
    assert rebuilt.id == message.id
    assert rebuilt.version == message.version == 4
    assert rebuilt.status is Status.READ
    assert rebuilt.attempts == 1
    assert rebuilt.provider_message_id == "SM123"
    assert rebuilt.to == message.to
    assert rebuilt.content == Body("hi")


def test_a_permanent_failure_is_recorded_and_replayed() -> None:
    message = new_message()
    message.record_attempt_failed("invalid_number", "the provider refused the number")
    assert status_of(message) is Status.FAILED
    assert message.attempts == 1
    assert message.error == {"code": "invalid_number", "message": "the provider refused the number"}
    # Nothing moves a failed message back.
    assert message.record_report(Status.DELIVERED) is False
    assert message.record_report(Status.UNDELIVERED) is False

    events = message.collect_events()
    assert [type(e) for e in events] == [Message.Queued, Message.Failed]
    rebuilt = replay(events)
    assert rebuilt.status is Status.FAILED
    assert rebuilt.attempts == 1
    assert rebuilt.error == message.error


def test_a_reported_failure_is_not_counted_as_an_attempt() -> None:
    message = new_message()
    message.record_accepted("SM1", None)
    assert message.record_report(Status.UNDELIVERED, error_code="30003") is True
    assert status_of(message) is Status.UNDELIVERED
    assert message.attempts == 1
    assert message.error is not None
    assert message.error["code"] == "30003"
    assert replay(message.collect_events()).attempts == 1


def test_a_report_before_the_acceptance_is_kept() -> None:
    message = new_message()
    assert message.record_report(Status.DELIVERED) is True
    assert status_of(message) is Status.DELIVERED
    assert message.provider_message_id is None

    message.record_accepted("SM999", None)
    assert status_of(message) is Status.DELIVERED  # not moved back to sent
    assert message.provider_message_id == "SM999"
    assert message.attempts == 1

    events = message.collect_events()
    assert [type(e) for e in events] == [Message.Queued, Message.Delivered, Message.Sent]
    rebuilt = replay(events)
    assert rebuilt.status is Status.DELIVERED
    assert rebuilt.provider_message_id == "SM999"
    assert rebuilt.attempts == 1


def test_message_id_for_is_deterministic_per_scope_and_key() -> None:
    assert message_id_for("scope", "key") == message_id_for("scope", "key")
    assert message_id_for("scope", "key") != message_id_for("other", "key")
    assert message_id_for("scope", "key") != message_id_for("scope", "other")
    # The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert message_id_for("a", "bc") != message_id_for("ab", "c")
    assert message_id_for("scope", "key").version == 5


def test_message_id_for_without_a_key_is_random() -> None:
    first = message_id_for("scope", None)
    second = message_id_for("scope", None)
    assert first != second
    assert first.version == 4
    assert second.version == 4
