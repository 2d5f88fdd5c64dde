"""The ``conversa_conversations`` read model: one row per conversation (channel, our
number, the contact), kept by the projection in the transaction that writes the messages'
rows, from those rows; and the WhatsApp customer service window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

#: How long after a contact's last message a free-form WhatsApp message may be sent.
WHATSAPP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: UUID
    channel: str
    contact: str
    business_number: str | None
    last_message_at: datetime
    last_inbound_at: datetime | None
    inbound_count: int
    outbound_count: int

    @property
    def window_expires_at(self) -> datetime | None:
        """When the WhatsApp customer service window closes (None: not WhatsApp, or the
        contact never wrote)."""
        if self.channel != "whatsapp" or self.last_inbound_at is None:
            return None
        return self.last_inbound_at + WHATSAPP_WINDOW

    def as_dict(self) -> dict[str, Any]:
        """The conversation resource of the contract."""
        window = self.window_expires_at
        return {
            "id": str(self.id),
            "channel": self.channel,
            "contact": self.contact,
            "business_number": self.business_number,
            "last_message_at": _rfc3339(self.last_message_at),
            "last_inbound_at": _rfc3339(self.last_inbound_at),
            "window_expires_at": _rfc3339(window),
            "inbound_count": self.inbound_count,
            "outbound_count": self.outbound_count,
        }


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ConversationQuery:
    channel: str | None = None
    contact: str | None = None
    page: int = 1
    per_page: int = 25


@dataclass(frozen=True, slots=True)
class ConversationPage:
    rows: list[ConversationRow]
    total: int
