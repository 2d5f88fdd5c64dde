"""Quiet hours in the recipient's local time, from the number's time zones, with a fixed
clock: several countries, numbers spanning zones, and the daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversa.domain.quiet_hours import InvalidQuietHours, QuietHours, zones_for

NIGHT = QuietHours.parse("21:00-08:00")
NEW_YORK = "+12125550100"
BERLIN = "+4915112345678"
TOKYO = "+81312345678"
SAO_PAULO = "+5511912345678"
#: A Russian mobile: libphonenumber places it anywhere from Bucharest (UTC+2) to
#: Kamchatka (UTC+12).
RUSSIAN_MOBILE = "+79161234567"
#: An Australian mobile: Cocos (UTC+6:30) to Lord Howe (UTC+11 in summer).
AUSTRALIAN_MOBILE = "+61412345678"
#: Newfoundland and Labrador's area code: St. John's (UTC-3:30) and Halifax (UTC-4).
NEWFOUNDLAND = "+17095550100"


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("21:00-08:00", time(21), time(8)),
        ("12:00-14:30", time(12), time(14, 30)),
        (" 9:05 - 17:45 ", time(9, 5), time(17, 45)),
    ],
)
def test_a_window_is_parsed(text: str, start: time, end: time) -> None:
    assert QuietHours.parse(text) == QuietHours(start, end)


@pytest.mark.parametrize("text", ["", "21-08", "21:00", "25:00-08:00", "21:60-08:00", "8:00-8:00"])
def test_a_bad_window_is_refused(text: str) -> None:
    with pytest.raises(InvalidQuietHours):
        QuietHours.parse(text)


def test_a_window_across_midnight_and_one_within_a_day() -> None:
    assert [NIGHT.is_quiet_time(time(h)) for h in (20, 21, 23, 0, 7, 8)] == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    lunch = QuietHours.parse("12:00-14:00")
    assert [lunch.is_quiet_time(time(h)) for h in (11, 12, 13, 14)] == [False, True, True, False]


@pytest.mark.parametrize(
    ("number", "now", "expected"),
    [
        # 07:00 in New York (EST): quiet until 08:00 local, 13:00 UTC.
        (NEW_YORK, at(2026, 12, 7, 12, 0), at(2026, 12, 7, 13, 0)),
        # 13:00 in New York: allowed now.
        (NEW_YORK, at(2026, 12, 7, 18, 0), at(2026, 12, 7, 18, 0)),
        # 21:30 in Berlin (CET): the next morning at 08:00, 07:00 UTC.
        (BERLIN, at(2026, 12, 7, 20, 30), at(2026, 12, 8, 7, 0)),
        # 21:00 in Tokyo exactly: quiet until 08:00, 23:00 UTC.
        (TOKYO, at(2026, 12, 7, 12, 0), at(2026, 12, 7, 23, 0)),
        # 05:00 in São Paulo (UTC-3): 08:00 local is 11:00 UTC.
        (SAO_PAULO, at(2026, 12, 7, 8, 0), at(2026, 12, 7, 11, 0)),
        # 20:59 in Tokyo: still allowed.
        (TOKYO, at(2026, 12, 7, 11, 59), at(2026, 12, 7, 11, 59)),
    ],
)
def test_the_next_allowed_moment_in_one_zone(
    number: str, now: datetime, expected: datetime
) -> None:
    assert NIGHT.next_allowed(number, now) == expected
    assert NIGHT.is_quiet(number, now) is (expected != now)
    assert not NIGHT.is_quiet(number, expected)


def test_a_number_spanning_zones_waits_until_it_is_allowed_in_all_of_them() -> None:
    zones = {str(zone) for zone in zones_for(RUSSIAN_MOBILE)}
    assert {"Europe/Bucharest", "Europe/Moscow", "Asia/Kamchatka"} <= zones
    # 12:00 UTC: 15:00 in Moscow, but midnight in Kamchatka: quiet.
    noon = at(2026, 12, 7, 12, 0)
    assert NIGHT.is_quiet(RUSSIAN_MOBILE, noon)
    assert not NIGHT.is_quiet("+74951234567", noon)  # a Moscow landline: one zone
    # Allowed everywhere once Bucharest (UTC+2) reaches 08:00, while Kamchatka (UTC+12)
    # is at 18:00: 06:00 UTC.
    allowed = NIGHT.next_allowed(RUSSIAN_MOBILE, noon)
    assert allowed == at(2026, 12, 8, 6, 0)
    assert not NIGHT.is_quiet(RUSSIAN_MOBILE, allowed)
    assert NIGHT.is_quiet(RUSSIAN_MOBILE, allowed - timedelta(seconds=1))
    # Three hours later, Kamchatka's 21:00 closes the window again.
    assert not NIGHT.is_quiet(RUSSIAN_MOBILE, at(2026, 12, 8, 8, 59))
    assert NIGHT.is_quiet(RUSSIAN_MOBILE, at(2026, 12, 8, 9, 0))


def test_an_australian_mobile_and_a_two_zone_canadian_area_code() -> None:
    # 23:00 UTC in December: 10:00 in Sydney, but 05:30 on Cocos (UTC+6:30): quiet,
    # until Cocos reaches 08:00 at 01:30 UTC (Lord Howe is then at 12:30).
    assert NIGHT.next_allowed(AUSTRALIAN_MOBILE, at(2026, 12, 7, 23, 0)) == at(2026, 12, 8, 1, 30)
    # Newfoundland's area code: 08:00 in Halifax (UTC-4) comes half an hour after
    # St. John's (UTC-3:30).
    assert NIGHT.next_allowed(NEWFOUNDLAND, at(2026, 12, 7, 11, 0)) == at(2026, 12, 7, 12, 0)
    # In the evening St. John's is quiet first: 21:00 there is 00:30 UTC.
    assert NIGHT.is_quiet(NEWFOUNDLAND, at(2026, 12, 8, 0, 30))
    assert not NIGHT.is_quiet(NEWFOUNDLAND, at(2026, 12, 8, 0, 29))


def test_the_morning_the_clocks_go_forward() -> None:
    # Berlin, 28 March 2026 23:00 CET; the clocks go to CEST that night, so 08:00 on the
    # 29th is 06:00 UTC, not 07:00 as the day before.
    assert NIGHT.next_allowed(BERLIN, at(2026, 3, 28, 22, 0)) == at(2026, 3, 29, 6, 0)
    # New York, 8 March 2026: a window ending at 02:30, a time the clocks skip (02:00 EST
    # becomes 03:00 EDT at 07:00 UTC): allowed from the jump.
    small_hours = QuietHours.parse("01:00-02:30")
    assert small_hours.next_allowed(NEW_YORK, at(2026, 3, 8, 6, 10)) == at(2026, 3, 8, 7, 0)


def test_the_night_the_clocks_go_back() -> None:
    # New York, 1 November 2026: 01:00-01:59 happens twice (EDT, then EST from 06:00 UTC).
    # Ending at 01:30, the window is left at 05:30 UTC, entered again at 06:00 UTC when
    # the clock shows 01:00 once more, and left for good at 06:30 UTC.
    window = QuietHours.parse("21:00-01:30")
    assert window.next_allowed(NEW_YORK, at(2026, 11, 1, 5, 0)) == at(2026, 11, 1, 5, 30)
    assert window.is_quiet(NEW_YORK, at(2026, 11, 1, 6, 10))
    assert window.next_allowed(NEW_YORK, at(2026, 11, 1, 6, 10)) == at(2026, 11, 1, 6, 30)
    # Berlin's autumn change (25 October 2026): 08:00 CET again, 07:00 UTC.
    assert NIGHT.next_allowed(BERLIN, at(2026, 10, 24, 22, 0)) == at(2026, 10, 25, 7, 0)


def test_a_number_the_data_cannot_place_takes_its_country_zones() -> None:
    # The fictional +44 7700 900 numbers are unassigned: the United Kingdom's zones.
    assert {str(zone) for zone in zones_for("+447700900123")} >= {"Europe/London"}
    assert NIGHT.next_allowed("+447700900123", at(2026, 12, 7, 6, 0)) == at(2026, 12, 7, 8, 0)


def test_the_whole_north_american_plan_has_a_common_moment() -> None:
    # A fictional +1 555 number takes all the plan's zones, Guam (UTC+10) to Samoa
    # (UTC-11): 21 hours apart one way, 3 the other; 22:00 UTC is 08:00 in Guam and
    # 11:00 the day before in Samoa.
    assert len(zones_for("+15551234567")) > 30
    assert NIGHT.next_allowed("+15551234567", at(2026, 12, 7, 12, 0)) == at(2026, 12, 7, 22, 0)


def test_zones_with_no_common_allowed_moment_still_give_one() -> None:
    # Ten allowed hours a day, in two zones fourteen hours apart: never both allowed.
    # The message still goes, at the first moment allowed in one of them.
    evening = QuietHours.parse("18:00-08:00")
    zones = [ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")]
    now = at(2026, 12, 7, 12, 0)  # 21:00 in Tokyo, 07:00 in New York
    assert evening.next_allowed_in(zones, now) == at(2026, 12, 7, 13, 0)  # 08:00 New York
    # While one is allowed, that is the best there is: now.
    assert evening.next_allowed_in(zones, at(2026, 12, 7, 14, 0)) == at(2026, 12, 7, 14, 0)
