"""Status reports: what a provider's webhook says about one message, once verified and
parsed by the provider's adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from conversa.domain.status import Status


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One status of one message.

    ``message_id`` is our id when the provider echoed it (Twilio's callback URL, Meta's
    ``biz_opaque_callback_data``); otherwise the report is matched by ``provider`` and
    ``provider_message_id``. ``status`` is the provider's value mapped onto the lattice;
    ``raw_status`` keeps the provider's own word. ``part_id``: the report is about one
    part of a message the provider split (Vonage's long SMS); a message is delivered once
    each of its parts is.
    """

    provider: str
    provider_message_id: str | None
    message_id: UUID | None
    status: Status
    raw_status: str
    error_code: str | None = None
    error_message: str | None = None
    occurred_at: datetime | None = None
    part_id: str | None = None


class ReportOutcome(StrEnum):
    APPLIED = "applied"  # it moved the message's status forward
    UNCHANGED = "unchanged"  # a duplicate, a replay or a late arrival: nothing to record
    PARKED = "parked"  # no message is known for it yet; kept until its Sent is recorded
