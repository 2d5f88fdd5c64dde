"""Lifecycle events: what applications subscribe to.

These are public and stable. They are built from the internal domain events, which may
evolve; their fields and names change only with the contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """Common to every lifecycle event. ``event_id`` is unique and stable across
    deliveries (the event store position), so a receiver can drop a duplicate."""

    event_id: int
    message_id: UUID
    channel: str
    to: str
    driver: str
    provider_message_id: str | None
    occurred_at: datetime

    #: The name used on the wire (SSE ``event:``, webhook ``type``).
    type_name = "message.event"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["message_id"] = str(self.message_id)
        data["occurred_at"] = self.occurred_at.isoformat().replace("+00:00", "Z")
        return {"type": self.type_name, **data}


@dataclass(frozen=True, slots=True)
class MessageSent(LifecycleEvent):
    """The provider accepted the message."""

    type_name = "message.sent"


@dataclass(frozen=True, slots=True)
class MessageDelivered(LifecycleEvent):
    type_name = "message.delivered"


@dataclass(frozen=True, slots=True)
class MessageRead(LifecycleEvent):
    type_name = "message.read"


@dataclass(frozen=True, slots=True)
class MessageFailed(LifecycleEvent):
    """The message will not be delivered: ``error`` is ``{"code", "message"}`` and
    ``status`` is ``failed`` or ``undelivered``."""

    error: dict[str, str] | None = None
    status: str = "failed"

    type_name = "message.failed"


@dataclass(frozen=True, slots=True)
class MessageReceived(LifecycleEvent):
    """A contact sent us a message. ``to`` is our number, ``sender`` (``from`` on the wire)
    the contact, ``driver`` the provider it came through; ``body`` is None when bodies are
    not stored; ``media`` lists each attachment's ``content_type`` (and caption, file name
    when stored)."""

    conversation_id: UUID | None = None
    sender: str = ""
    body: str | None = None
    media: list[dict[str, Any]] = field(default_factory=list)

    type_name = "message.received"

    def as_dict(self) -> dict[str, Any]:
        data = LifecycleEvent.as_dict(self)  # (slots: no zero-argument super)
        data["from"] = data.pop("sender")
        data["conversation_id"] = (
            None if self.conversation_id is None else str(self.conversation_id)
        )
        if self.body is None:
            del data["body"]
        return data


@dataclass(frozen=True, slots=True)
class RecipientEvent(LifecycleEvent):
    """A change of a number's consent: of ``channel`` (``sms``, ``whatsapp`` or ``all``),
    for all messages or marketing only (``scope``), by a ``source`` (``keyword``,
    ``provider``, ``api``, ``import``). ``message_id`` is the recipient's ledger id;
    ``cause_message_id`` the message that caused the change, when one did (on the wire:
    ``message_id``)."""

    number: str = ""
    scope: str = "all"
    source: str = ""
    keyword: str | None = None
    code: str | None = None
    cause_message_id: UUID | None = None

    type_name = "recipient.event"

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type_name,
            "event_id": self.event_id,
            "number": self.number,
            "channel": self.channel,
            "scope": self.scope,
            "source": self.source,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
        }
        if self.keyword is not None:
            data["keyword"] = self.keyword
        if self.code is not None:
            data["code"] = self.code
        if self.cause_message_id is not None:
            data["message_id"] = str(self.cause_message_id)
        return data


@dataclass(frozen=True, slots=True)
class RecipientOptedOut(RecipientEvent):
    """A number opted out (see :class:`RecipientEvent` for the fields)."""

    type_name = "recipient.opted_out"


@dataclass(frozen=True, slots=True)
class RecipientOptedIn(RecipientEvent):
    """A number opted in again (see :class:`RecipientEvent` for the fields)."""

    type_name = "recipient.opted_in"


EVENT_TYPES: tuple[type[LifecycleEvent], ...] = (
    MessageSent,
    MessageDelivered,
    MessageRead,
    MessageFailed,
    MessageReceived,
    RecipientOptedOut,
    RecipientOptedIn,
)

__all__ = [
    "EVENT_TYPES",
    "LifecycleEvent",
    "MessageDelivered",
    "MessageFailed",
    "MessageRead",
    "MessageReceived",
    "MessageSent",
    "RecipientEvent",
    "RecipientOptedIn",
    "RecipientOptedOut",
]
