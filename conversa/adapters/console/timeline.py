"""A message's history as the console's timeline: each event in words, with its time
relative to the first and what an operator needs to know about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from conversa.adapters.console.formats import duration
from conversa.adapters.console.meanings import meaning

SOURCES = {
    "driver": "the driver's answer",
    "provider_report": "a provider's status report",
}


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    title: str
    at: datetime
    offset: float
    driver: str | None = None
    details: list[str] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    meaning: str | None = None
    note: str | None = None
    link: tuple[str, str] | None = None  # (message id, label)


def timeline(events: Sequence[dict[str, Any]]) -> list[Entry]:
    """The entries of a message's events (``ConversaService.message_history``'s), oldest
    first."""
    if not events:
        return []
    first = _at(events[0])
    entries = []
    reported: str | None = None  # the furthest status a provider's report reached
    accepted = False
    for event in events:
        at = _at(event)
        kind = str(event.get("type", "other"))
        entry = _entry(kind, event, at, (at - first).total_seconds())
        source = event.get("source")
        note = None
        if kind in ("delivered", "read") and source == "provider_report" and not accepted:
            note = "arrived before the driver's answer was recorded (out of order)"
        if kind == "sent" and source == "driver" and reported in ("delivered", "read"):
            note = f"late: the driver's answer came after the provider reported {reported}"
        if kind == "sent" and source == "driver":
            accepted = True
        if kind in ("delivered", "read"):
            reported = kind
        entries.append(entry if note is None else replace(entry, note=note))
    return entries


def _entry(kind: str, event: dict[str, Any], at: datetime, offset: float) -> Entry:
    driver = event.get("driver")
    error = event.get("error") or {}
    code = error.get("code")
    base: dict[str, Any] = {
        "kind": kind,
        "at": at,
        "offset": offset,
        "driver": driver,
        "error_code": code,
        "error_message": error.get("message"),
        "meaning": meaning(code),
    }
    details: list[str] = []
    source = event.get("source")
    if source:
        details.append("from " + SOURCES.get(source, source))
    if kind == "queued":
        title = f"Queued for {event.get('channel')} via {driver}"
    elif kind == "attempt_started":
        title = f"Attempt {event.get('attempt')} started"
    elif kind == "retried":
        wait = _wait(at, event.get("next_attempt_at"))
        title = f"Attempt {event.get('attempt')} failed; retry in {wait}"
    elif kind == "sent":
        title = "Accepted by the provider" if source == "driver" else "Sent"
        if event.get("provider_message_id"):
            details.append(f"provider id {event['provider_message_id']}")
    elif kind == "delivered":
        title = "Delivered to the handset"
    elif kind == "read":
        title = "Read by the recipient"
    elif kind == "failed":
        permanent = "permanently" if event.get("permanent") else ""
        title = f"Failed {permanent} ({event.get('status', 'failed')})".replace("  ", " ")
    elif kind == "received":
        title = "Received"
    elif kind == "fallback_requested":
        title = f"Fallback to {event.get('channel')} planned"
        wait = _wait(at, event.get("due_at"))
        details.append(f"if not delivered within {wait}")
    elif kind == "fell_back":
        title = f"Fell back: {event.get('reason', '')}".rstrip(": ")
        base["link"] = (str(event.get("fallback_message_id")), "the fallback message")
    elif kind == "fallback_of":
        title = "Sent as the fallback of another message"
        base["link"] = (str(event.get("fallback_of")), "the original message")
    elif kind == "parts_accepted":
        title = f"Split into {len(event.get('parts') or [])} parts"
    elif kind == "part_delivered":
        title = f"Part {event.get('part')} delivered"
    else:
        title = kind.replace("_", " ").capitalize()
    return Entry(title=title, details=details, **base)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]))


def _wait(at: datetime, until: object) -> str:
    if not isinstance(until, str):
        return "?"
    return duration(max((datetime.fromisoformat(until) - at).total_seconds(), 0.0))
