"""Quiet hours: the part of the recipient's day when marketing messages wait.

``CONVERSA_QUIET_HOURS=21:00-08:00`` is a window of local wall-clock time, from its start
(quiet) to its end (allowed again); it may cross midnight (``21:00-08:00``) or not
(``12:00-14:00``). The recipient's local time comes from the number:
libphonenumber's time-zone data names the zones a number may be in.

- A number in several zones (a Russian or Australian mobile, a Canadian area code on
  two zones) is quiet at a moment when that moment is quiet in ANY of its zones, and
  :meth:`QuietHours.next_allowed` gives the first moment allowed in ALL of them.
- A number the data cannot place (unassigned, a fictional +1 555 number) takes the zones
  of its country calling code; a code the data does not know at all, UTC.
- Zones so far apart that no moment is allowed in all of them (none of libphonenumber's
  sets today, but a long quiet window narrows the day) never leave a message waiting
  forever: it goes at the first moment allowed in as many of its zones as any moment is.

Times are compared on the wall clock of each zone, so daylight-saving changes are taken
as the recipient lives them: an end that falls in a skipped hour is reached when the
clock jumps past it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones
from phonenumbers.tzdata import TIMEZONE_DATA

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: How far ahead a quiet period's end is looked for: more than a day in every zone, and
#: the daylight-saving changes in between.
_HORIZON_DAYS = 3
#: Precision of the search for the moment the clock jumps past a skipped wall time.
_RESOLUTION = timedelta(seconds=1)


class InvalidQuietHours(ValueError):
    """The quiet-hours setting is not a window ``HH:MM-HH:MM``."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"21:00-08:00"``; raises :class:`InvalidQuietHours` saying what is wrong."""
        match = _WINDOW.match(text)
        if match is None:
            raise InvalidQuietHours("must be a window of local time like 21:00-08:00")
        hour1, minute1, hour2, minute2 = (int(group) for group in match.groups())
        try:
            start, end = time(hour1, minute1), time(hour2, minute2)
        except ValueError:
            raise InvalidQuietHours(
                "must be a window of local time like 21:00-08:00 (hours 00-23, minutes 00-59)"
            ) from None
        if start == end:
            raise InvalidQuietHours("starts and ends at the same time: give a window")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def is_quiet_time(self, local: time) -> bool:
        """Whether this wall-clock time of day is inside the window."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # it crosses midnight

    def is_quiet(self, number: str, moment: datetime) -> bool:
        """Whether ``moment`` is quiet for ``number`` (E.164): quiet in any of its zones."""
        return any(self._quiet_in(zone, moment) for zone in zones_for(number))

    def next_allowed(self, number: str, now: datetime) -> datetime:
        """``now`` when it is allowed for ``number`` in all its zones, else the first
        moment after it that is (in UTC)."""
        return self.next_allowed_in(zones_for(number), now)

    def next_allowed_in(self, zones: Sequence[tzinfo], now: datetime) -> datetime:
        """``now`` when it is allowed in all ``zones``, else the first moment after it
        that is; when none is, the first allowed in the most of them."""
        if not any(self._quiet_in(zone, now) for zone in zones):
            return now
        # The first moment allowed everywhere is one where some zone's quiet period ends
        # (just before it, that zone was quiet): only those need looking at, and now.
        candidates = sorted({now, *(end for zone in zones for end in self._ends(zone, now))})
        for candidate in candidates:
            if not any(self._quiet_in(zone, candidate) for zone in zones):
                return candidate
        # No moment is allowed in all the zones: the first allowed in the most of them.
        return max(
            candidates,
            key=lambda moment: (
                sum(not self._quiet_in(zone, moment) for zone in zones),
                -moment.timestamp(),
            ),
        )

    def _quiet_in(self, zone: tzinfo, moment: datetime) -> bool:
        return self.is_quiet_time(moment.astimezone(zone).time().replace(tzinfo=None))

    def _ends(self, zone: tzinfo, now: datetime) -> list[datetime]:
        """The moments (UTC) after ``now``, within the horizon, when the zone's wall
        clock reaches the window's end."""
        today = now.astimezone(zone).date()
        ends = []
        for offset in range(-1, _HORIZON_DAYS):
            for moment in _wall_moments(today + timedelta(days=offset), self.end, zone):
                if moment > now:
                    ends.append(moment)
        return ends


@lru_cache(maxsize=16_384)
def _wall_moments(day: date, wall: time, zone: tzinfo) -> tuple[datetime, ...]:
    """The moments (UTC) when ``zone``'s clock shows ``wall`` on ``day``: one, two (an
    hour repeated when the clocks go back), or, when the clocks skip it, the moment they
    jump past it. Cached: a batch asks the same days of the same zones again and again."""
    found = []
    for fold in (0, 1):
        local = datetime.combine(day, wall, tzinfo=zone).replace(fold=fold)
        moment = local.astimezone(UTC)
        if moment.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
            found.append(moment)
    if found:
        return tuple(found)
    # Skipped: between the two readings of the wall time lies the jump; find it.
    early = datetime.combine(day, wall, tzinfo=zone).replace(fold=1).astimezone(UTC)
    late = datetime.combine(day, wall, tzinfo=zone).replace(fold=0).astimezone(UTC)
    early, late = min(early, late), max(early, late)
    target = datetime.combine(day, wall)
    while late - early > _RESOLUTION:
        middle = early + (late - early) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= target:
            late = middle
        else:
            early = middle
    # The clocks change on a whole second: the first one after ``early``.
    return (early.replace(microsecond=0) + _RESOLUTION,)


@lru_cache(maxsize=65_536)
def zones_for(number: str) -> tuple[tzinfo, ...]:
    """The time zones a number (E.164) may be in, as libphonenumber knows them; its
    country's when the number itself cannot be placed; UTC when neither can."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return (UTC,)
    names: tuple[str, ...] = tuple(number_zones.time_zones_for_number(parsed))
    if names == (number_zones.UNKNOWN_TIMEZONE,):
        names = tuple(TIMEZONE_DATA.get(str(parsed.country_code), ()))
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # a name this system's zone database lacks
    return tuple(zones) or (UTC,)
