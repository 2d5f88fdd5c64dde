"""apply_event: the read-model row folded from a message's events matches the aggregate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import pytest
from eventsourcing.domain import DomainEventProtocol

from conversa.app.projection import MessageRow, ProjectionOutOfSequence, apply_event
from conversa.app.results import MessageState
from conversa.domain.content import Content, Template
from conversa.domain.inbound import conversation_id_for
from conversa.domain.message import Message
from conversa.domain.status import Status
from tests.support import queued_message

Events = Sequence[DomainEventProtocol[UUID]]


def new_message(content: Content | None = None) -> Message:
    # A message with every optional column filled, so that the fold is checked on all.
    return queued_message(
        channel="whatsapp",
        to="+44 20 7946 0958",
        sender="+15550000000",
        content=content,
        meta={"order": 42},
    )


def fold(events: Events) -> MessageRow:
    row: MessageRow | None = None
    for event in events:
        row = apply_event(row, event)
    assert row is not None
    return row


def accepted_delivered_read(message: Message) -> None:
    message.record_accepted("wamid.1", {"messages": [{"id": "wamid.1"}]})
    message.record_report(Status.DELIVERED)
    message.record_report(Status.READ)


def delivered_before_accepted(message: Message) -> None:
    message.record_report(Status.DELIVERED)
    message.record_accepted("wamid.2", None)


def attempt_failed(message: Message) -> None:
    message.record_attempt_failed("invalid_number", "refused by the provider")


def accepted_then_undelivered(message: Message) -> None:
    message.record_accepted("wamid.3", None)
    message.record_report(Status.UNDELIVERED, error_code="131026", error_message="unreachable")
    message.record_report(Status.FAILED)


def reported_sent_with_id(message: Message) -> None:
    message.record_report(Status.SENT, provider_message_id="wamid.4")


def queued_only(message: Message) -> None:
    pass


@pytest.mark.parametrize(
    "story",
    [
        accepted_delivered_read,
        delivered_before_accepted,
        attempt_failed,
        accepted_then_undelivered,
        reported_sent_with_id,
        queued_only,
    ],
)
def test_folded_row_matches_the_aggregate(story: Callable[[Message], None]) -> None:
    message = new_message()
    story(message)
    row = fold(message.collect_events())

    assert row.id == message.id
    assert row.status == message.status.value
    assert row.attempts == message.attempts
    assert row.provider_message_id == message.provider_message_id
    error = message.error or {}
    assert row.error_code == error.get("code")
    assert row.error_message == error.get("message")
    assert row.version == message.version
    assert row.updated_at == message.updated_at
    assert row.created_at == message.created_on


def test_the_queued_row_copies_the_request() -> None:
    message = new_message()
    row = fold(message.collect_events())
    assert row.channel == "whatsapp"
    assert row.to == "+442079460958"
    assert row.sender == "+15550000000"
    assert row.driver == "log"
    assert row.body == "hi"
    assert row.template is None
    assert row.meta == {"order": 42}
    assert row.status == "queued"
    assert row.version == 1


def test_a_template_is_stored_as_name_and_variables() -> None:
    message = new_message(Template("otp", ("1234",)))
    row = fold(message.collect_events())
    assert row.body is None
    assert row.template == {"name": "otp", "variables": ["1234"]}


def test_the_projection_states_differ_between_stories() -> None:
    # Guards the comparison above against passing because nothing changes.
    first, second = new_message(), new_message()
    accepted_delivered_read(first)
    attempt_failed(second)
    assert fold(first.collect_events()).status == "read"
    assert fold(second.collect_events()).status == "failed"


def test_an_event_applied_twice_is_refused() -> None:
    message = new_message()
    accepted_delivered_read(message)
    events = message.collect_events()
    row = fold(events)
    with pytest.raises(ProjectionOutOfSequence):
        apply_event(row, events[-1])
    middle = fold(events[:2])
    with pytest.raises(ProjectionOutOfSequence):
        apply_event(middle, events[1])


def test_queued_twice_is_refused() -> None:
    events = new_message().collect_events()
    row = fold(events)
    with pytest.raises(ProjectionOutOfSequence):
        apply_event(row, events[0])


def test_a_skipped_event_is_refused() -> None:
    message = new_message()
    accepted_delivered_read(message)
    events = message.collect_events()
    row = apply_event(None, events[0])
    with pytest.raises(ProjectionOutOfSequence):
        apply_event(row, events[2])


def test_an_event_before_queued_is_refused() -> None:
    message = new_message()
    message.record_accepted("wamid.5", None)
    events = message.collect_events()
    with pytest.raises(ProjectionOutOfSequence):
        apply_event(None, events[1])


def test_the_sender_a_driver_used_makes_the_from_and_conversation_of_one_queued_without() -> None:
    business = "+15550001111"
    unsent = queued_message(channel="whatsapp", to="+15557654321")
    unsent.record_report(Status.SENT, provider_message_id="wamid.5")  # a report: no sender
    unsent.record_accepted("wamid.5", None, sender=business)
    unsent.record_accepted("wamid.5", None, sender="+15550002222")  # the first one told stays
    own = queued_message(channel="whatsapp", to="+15557654321", sender="whatsapp:" + business)
    own.record_accepted("wamid.6", None, sender="+15550002222")  # the message's own stays
    for message, sender in ((unsent, business), (own, "whatsapp:" + business)):
        events = message.collect_events()
        queued = fold(events[:1])
        row = fold(events)
        state = MessageState.of(message)
        assert row.sender == state.sender == sender
        expected = conversation_id_for("whatsapp", business, "+15557654321")
        assert row.conversation_id == state.conversation_id == expected
        if message is unsent:
            assert queued.sender is None
            assert queued.conversation_id == conversation_id_for("whatsapp", None, "+15557654321")
