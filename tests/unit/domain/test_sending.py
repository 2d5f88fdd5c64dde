"""A request's sending terms: category, consent and send_at, parsed or refused by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from conversa.domain.errors import InvalidRequest
from conversa.domain.sending import (
    MAX_SCHEDULE_AHEAD,
    Category,
    check_send_at,
    parse_consent_override,
    parse_send_at,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_categories() -> None:
    assert Category.parse(None) is Category.TRANSACTIONAL
    assert Category.parse("marketing") is Category.MARKETING
    for bad in ("promo", "Marketing", "", 1, ["marketing"]):
        with pytest.raises(InvalidRequest) as caught:
            Category.parse(bad)
        assert caught.value.field == "category"


def test_consent() -> None:
    assert parse_consent_override(None) is False
    assert parse_consent_override("check") is False
    assert parse_consent_override("ignore") is True
    for bad in ("skip", True, "IGNORE", 0):
        with pytest.raises(InvalidRequest) as caught:
            parse_consent_override(bad)
        assert caught.value.field == "consent"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-24T09:00:00Z", datetime(2026, 12, 24, 9, tzinfo=UTC)),
        ("2026-12-24t09:00:00z", datetime(2026, 12, 24, 9, tzinfo=UTC)),
        ("2026-12-24T10:30:00+01:30", datetime(2026, 12, 24, 9, tzinfo=UTC)),
        ("2026-12-24T09:00:00.250-00:00", datetime(2026, 12, 24, 9, 0, 0, 250000, tzinfo=UTC)),
        (
            datetime(2026, 12, 24, 4, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2026, 12, 24, 9, tzinfo=UTC),
        ),
    ],
)
def test_send_at_is_read_as_one_utc_instant(raw: object, expected: datetime) -> None:
    moment = parse_send_at(raw)
    assert moment == expected and moment.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        "2026-12-24T09:00:00",  # no offset: ambiguous
        datetime(2026, 12, 24, 9),
        "2026-12-24",
        "tomorrow",
        "2026-13-24T09:00:00Z",
        1766566800,
        None,
    ],
)
def test_malformed_send_at_is_refused(raw: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_send_at(raw)
    assert caught.value.field == "send_at"


def test_send_at_reaches_35_days_ahead_and_a_past_time_means_at_once() -> None:
    assert check_send_at(NOW + MAX_SCHEDULE_AHEAD, NOW) == NOW + MAX_SCHEDULE_AHEAD
    past = NOW - timedelta(days=2)
    assert check_send_at(past, NOW) == past
    with pytest.raises(InvalidRequest) as caught:
        check_send_at(NOW + MAX_SCHEDULE_AHEAD + timedelta(seconds=1), NOW)
    assert caught.value.field == "send_at" and "35 days" in caught.value.message
