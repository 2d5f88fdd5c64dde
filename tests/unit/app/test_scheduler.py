"""When a new message is first attempted: send_at, and quiet hours for marketing only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conversa.app.scheduling import Scheduler
from conversa.domain.phone import PhoneNumber
from conversa.domain.quiet_hours import QuietHours
from conversa.domain.sending import Category

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 07:00 in New York, 13:00 in Berlin
NEW_YORK = PhoneNumber.parse("+12125550100")
BERLIN = PhoneNumber.parse("+4915112345678")
QUIET = Scheduler(QuietHours.parse("21:00-08:00"))
MARKETING, TRANSACTIONAL = Category.MARKETING, Category.TRANSACTIONAL


def test_quiet_hours_hold_back_marketing_only() -> None:
    assert QUIET.scheduled_at(MARKETING, NEW_YORK, None, NOW) == NOW + timedelta(hours=1)
    assert QUIET.scheduled_at(TRANSACTIONAL, NEW_YORK, None, NOW) is None
    assert QUIET.scheduled_at(MARKETING, BERLIN, None, NOW) is None
    assert Scheduler(None).scheduled_at(MARKETING, NEW_YORK, None, NOW) is None


def test_send_at_ahead_is_kept_and_moved_past_quiet_hours_for_marketing() -> None:
    evening = NOW + timedelta(hours=8)  # 21:00 in Berlin
    assert QUIET.scheduled_at(TRANSACTIONAL, BERLIN, evening, NOW) == evening
    assert QUIET.scheduled_at(MARKETING, BERLIN, evening, NOW) == datetime(
        2026, 12, 8, 7, 0, tzinfo=UTC
    )


def test_a_moment_past_or_within_a_second_is_at_once() -> None:
    for send_at in (NOW - timedelta(days=1), NOW, NOW + timedelta(milliseconds=999)):
        assert QUIET.scheduled_at(TRANSACTIONAL, BERLIN, send_at, NOW) is None
    second = NOW + timedelta(seconds=1)
    assert QUIET.scheduled_at(TRANSACTIONAL, BERLIN, second, NOW) == second
    # A past send_at of a marketing message in quiet hours: the morning, not at once.
    assert QUIET.scheduled_at(MARKETING, NEW_YORK, NOW - timedelta(hours=1), NOW) == NOW + (
        timedelta(hours=1)
    )
