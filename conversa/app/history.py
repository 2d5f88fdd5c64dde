"""A message's events as the audit trail shows them: oldest first, plain data."""

from __future__ import annotations

import re
from typing import Any

from conversa.app.results import rfc3339
from conversa.domain.message import Message


def describe(event: Message.Event) -> dict[str, Any]:
    """``{"type", "occurred_at", "version", ...details}`` of one event.

    Details never include the body, the template variables or the request fingerprint:
    the message resource shows the content once, when it is stored at all.
    """
    entry: dict[str, Any] = {
        "type": _snake(type(event).__name__),
        "occurred_at": rfc3339(event.timestamp),
        "version": event.originator_version,
    }
    if isinstance(event, Message.Queued):
        entry.update(channel=event.channel, to=event.to.e164, driver=event.driver)
        entry["from"] = event.sender
        entry.update(
            category=event.category,
            scheduled_at=None if event.scheduled_at is None else rfc3339(event.scheduled_at),
        )
    elif isinstance(event, Message.AttemptStarted):
        entry.update(attempt=event.attempt, lease_until=rfc3339(event.lease_until))
        _driver(entry, event.driver)
    elif isinstance(event, Message.Retried):
        entry.update(
            attempt=event.attempt,
            error={"code": event.code, "message": event.message},
            next_attempt_at=rfc3339(event.next_attempt_at),
        )
        _driver(entry, event.driver)
    elif isinstance(event, Message.Sent):
        entry.update(provider_message_id=event.provider_message_id or None, source=event.source)
        _driver(entry, event.driver)
        if event.sender is not None:  # the number the driver sent from
            entry["from"] = event.sender
    elif isinstance(event, Message.FallbackRequested):
        entry.update(channel=event.channel, due_at=rfc3339(event.due_at))
    elif isinstance(event, Message.FellBack):
        entry.update(fallback_message_id=str(event.fallback_message_id), reason=event.reason)
    elif isinstance(event, Message.FallbackOf):
        entry.update(fallback_of=str(event.original_id))
    elif isinstance(event, Message.PartsAccepted):
        entry.update(parts=list(event.parts))
    elif isinstance(event, Message.PartDelivered):
        entry.update(part=event.part)
    elif isinstance(event, Message.Delivered | Message.Read):
        entry.update(source=event.source)
    elif isinstance(event, Message.Failed):
        entry.update(
            status=event.status,
            error={"code": event.code, "message": event.message},
            permanent=event.permanent,
            source=event.source,
        )
        _driver(entry, event.driver)
    return entry


def _driver(entry: dict[str, Any], driver: str | None) -> None:
    """The driver that made the attempt, when one did (not on a provider's report)."""
    if driver is not None:
        entry["driver"] = driver


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
