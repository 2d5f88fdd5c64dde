"""Inbound messages: what a provider's webhook says a contact sent us, once verified and
parsed by the provider's adapter, and how it is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError

from conversa.app.writer import Writer
from conversa.domain.channel import Channel
from conversa.domain.inbound import InboundMessage


@dataclass(frozen=True, slots=True)
class InboundReport:
    """One inbound message as a provider delivered it (numbers in E.164)."""

    provider: str
    provider_message_id: str
    channel: Channel
    sender: str
    recipient: str
    body: str | None
    kind: str = "text"
    media: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] | None = None
    profile_name: str | None = None
    context_id: str | None = None


def record_inbound(writer: Writer, report: InboundReport, *, store_body: bool) -> bool:
    """Record ``report`` as an :class:`InboundMessage`; False when it is recorded already
    (a provider's retry: the event store refuses the same id twice).

    Without ``store_body``, the text, the captions and the kind's details (a button's
    title, a location's name, a reaction) are left out before anything is recorded."""
    message = inbound_message(report, store_body=store_body)
    try:
        writer.save(message)
    except IntegrityError:
        return False
    return True


def inbound_message(report: InboundReport, *, store_body: bool) -> InboundMessage:
    """The new :class:`InboundMessage` of ``report``, not saved yet."""
    media = report.media
    if not store_body:
        media = [{k: v for k, v in item.items() if k != "caption"} for item in media]
    return InboundMessage.receive(
        provider=report.provider,
        provider_message_id=report.provider_message_id,
        channel=report.channel,
        sender=report.sender,
        recipient=report.recipient,
        body=report.body if store_body else None,
        kind=report.kind,
        media=media,
        details=report.details if store_body else None,
        profile_name=report.profile_name,
        context_id=report.context_id,
    )
