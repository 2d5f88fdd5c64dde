"""Jinja filters: how numbers, times and statuses are shown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber


def masked(number: object) -> str:
    """A number with all but its country prefix and last two digits hidden; anything that
    does not parse as a number (a WhatsApp id, a short code) is hidden the same way."""
    if not isinstance(number, str) or not number:
        return ""
    try:
        return PhoneNumber.parse(number).masked()
    except InvalidRequest:
        if len(number) <= 4:
            return "*" * len(number)
        return number[:2] + "*" * (len(number) - 4) + number[-2:]


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, shortly: ``12s``, ``5m``, ``3h``, ``2d``."""
    if moment is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def offset(delta: timedelta | float) -> str:
    """A time relative to the first event: ``+0.000s``, ``+1.250s``, ``+2m03s``."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 60:
        return f"+{seconds:.3f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"+{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours}h{minutes:02d}m"


def timestamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


FILTERS: dict[str, Callable[..., Any]] = {
    "masked": masked,
    "age": age,
    "offset": offset,
    "timestamp": timestamp,
    "duration": duration,
}
