"""Scheduled and cancelled messages: a scheduled message waits for the due scan's claim,
may be cancelled until an attempt starts, and once cancelled stays cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conversa.app.projection import MessageRow, apply_event
from conversa.domain.message import ATTEMPT_BY_DISPATCHER, Message
from conversa.domain.status import Status
from tests.support import queued_message, scheduled_message

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AT = NOW + timedelta(hours=3)
LEASE = timedelta(seconds=60)


def fold(message: Message) -> MessageRow:
    row: MessageRow | None = None
    for event in message.collect_events():
        row = apply_event(row, event)
    assert row is not None
    return row


def test_a_scheduled_message_is_claimed_only_by_the_due_scan_once_due() -> None:
    message = scheduled_message(AT)
    # The drain's claim (made at once for asynchronous sends) leaves it alone.
    assert not message.claim_queued(NOW + LEASE)
    assert not message.claim_attempt(AT - timedelta(seconds=1), AT + LEASE)
    # Nor does the request that recorded it take it over after an outage hid its commit.
    message.nonce = "mine"
    assert not message.take_over_first_attempt("mine", NOW + LEASE)
    assert message.version == 1
    assert message.claim_attempt(AT, AT + LEASE)
    assert message.version == 2
    assert not message.cancellable  # an attempt has started


def test_cancelled_before_any_attempt_it_is_never_claimed() -> None:
    message = scheduled_message(AT)
    assert message.cancellable
    assert message.cancel()
    assert message.status is Status.CANCELLED
    assert message.status.is_final
    assert message.next_attempt_at is None
    assert not message.claim_attempt(AT + timedelta(days=1), AT + LEASE)
    assert not message.claim_queued(AT + LEASE)
    assert not message.take_over_first_attempt("nonce", AT + LEASE)
    # A second cancel records nothing.
    version = message.version
    assert not message.cancel()
    assert message.version == version


@pytest.mark.parametrize("status", [Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED])
def test_a_late_report_does_not_revive_a_cancelled_message(status: Status) -> None:
    message = scheduled_message(AT)
    message.cancel()
    assert not message.record_report(status, provider_message_id="SM1")
    assert message.status is Status.CANCELLED
    assert Status.CANCELLED.merge(status) is Status.CANCELLED
    assert status.merge(Status.CANCELLED) is Status.CANCELLED


def test_an_unscheduled_asynchronous_message_is_cancellable_until_claimed() -> None:
    message = scheduled_message(AT)
    # As queue() records it: for the drain, not scheduled.
    message = Message(
        id=message.id,
        channel="sms",
        to=message.to,
        sender=None,
        content=message.content,
        driver="log",
        meta={},
        idempotency_key=None,
        fingerprint="f",
        next_attempt_at=NOW + LEASE,
        nonce="n",
        attempt_by=ATTEMPT_BY_DISPATCHER,
        reply_to=None,
        quote=None,
        category="transactional",
        consent_override=False,
        scheduled_at=None,
    )
    assert message.cancellable
    assert message.claim_queued(NOW + LEASE)
    assert not message.cancellable
    with pytest.raises(ValueError, match="cannot be cancelled"):
        message.cancel()


def test_a_synchronous_send_is_attempted_by_its_request_and_cannot_be_cancelled() -> None:
    message = queued_message()
    assert not message.cancellable
    with pytest.raises(ValueError, match="cannot be cancelled"):
        message.cancel()


def test_the_row_shows_the_category_the_schedule_and_the_cancel() -> None:
    message = scheduled_message(AT)
    row = fold(message)
    assert (row.status, row.category, row.scheduled_at, row.next_attempt_at) == (
        "queued",
        "marketing",
        AT,
        AT,
    )
    message = scheduled_message(AT)
    message.cancel()
    row = fold(message)
    assert (row.status, row.scheduled_at, row.next_attempt_at, row.version) == (
        "cancelled",
        AT,
        None,
        2,
    )
    assert fold(queued_message()).category == "transactional"
