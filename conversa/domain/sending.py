"""How a message is to be sent, beyond what it says and to whom: its category, whether
consent is checked, and when it goes out.

    category   "transactional" (the default: codes, alerts, order updates) or "marketing";
               quiet hours and marketing opt-outs apply to marketing only.
    consent    "check" (the default) or "ignore": sent even to an opted-out recipient, for
               legally required notices; only tokens allowed to may ask for it.
    send_at    an RFC 3339 instant with an offset, at most 35 days ahead; a moment already
               past means at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from conversa.domain.errors import InvalidRequest

#: How far ahead a message may be scheduled (Twilio's own limit for scheduled messages).
MAX_SCHEDULE_AHEAD = timedelta(days=35)


class Category(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"

    @classmethod
    def parse(cls, raw: object) -> Category:
        if raw is None:
            return cls.TRANSACTIONAL
        if isinstance(raw, str) and raw in cls._value2member_map_:
            return cls(raw)
        raise InvalidRequest(
            "category", f"category must be one of {', '.join(c.value for c in cls)}"
        )


def parse_consent_override(raw: object) -> bool:
    """Whether ``consent`` asks to skip the consent check (``"ignore"``)."""
    if raw is None or raw == "check":
        return False
    if raw == "ignore":
        return True
    raise InvalidRequest("consent", 'consent must be "check" or "ignore"')


def parse_send_at(raw: object) -> datetime:
    """``send_at`` as an aware UTC datetime: an RFC 3339 string with an offset (or an aware
    datetime, from Python). Its distance from now is checked by :func:`check_send_at`."""
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, str) and "T" in raw.upper():
        try:
            moment = datetime.fromisoformat(raw.upper())  # RFC 3339 allows "t" and "z"
        except ValueError:
            raise InvalidRequest("send_at", _SEND_AT_FORMAT) from None
    else:
        raise InvalidRequest("send_at", _SEND_AT_FORMAT)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest(
            "send_at", "send_at must carry its offset from UTC (Z or +hh:mm): the time is ambiguous"
        )
    return moment.astimezone(UTC)


def check_send_at(moment: datetime, now: datetime) -> datetime:
    """``moment`` if it is at most 35 days ahead of ``now``.

    A moment already past is taken as "at once" rather than refused: clients' clocks are
    not ours, and an idempotent replay of a scheduled send, made after its time, must find
    the message it recorded rather than an error.
    """
    if moment > now + MAX_SCHEDULE_AHEAD:
        raise InvalidRequest(
            "send_at", f"send_at may be at most {MAX_SCHEDULE_AHEAD.days} days ahead"
        )
    return moment


_SEND_AT_FORMAT = "send_at must be an RFC 3339 time such as 2026-12-24T09:00:00Z"
