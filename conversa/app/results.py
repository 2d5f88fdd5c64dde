"""Plain data the application hands back to its callers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from conversa.app.projection import MessageRow, business_number
from conversa.domain.content import Body, Template
from conversa.domain.inbound import RECEIVED, InboundMessage, conversation_id_for
from conversa.domain.message import Message


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


#: What the resource shows of an attachment (not how to fetch it: that goes through
#: ``GET /conversa/messages/{id}/media/{n}``).
PUBLIC_MEDIA_FIELDS = ("content_type", "caption", "filename")


def public_media(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in PUBLIC_MEDIA_FIELDS if k in item}


def sender_of(message: Message) -> str | None:
    """An outbound message's ``from``: the one it was queued with, else the number its
    driver reported sending from (None until then, or when the driver cannot tell). The
    projection's fold applies the same rule to the read model's rows."""
    sent_from: str | None = getattr(message, "sent_from", None)
    return message.sender or sent_from


@dataclass(frozen=True, slots=True)
class MessageState:
    """One message as the API shows it (from the aggregate, or from a read-model row)."""

    id: UUID
    channel: str
    to: str
    sender: str | None
    driver: str
    status: str
    body: str | None
    template: dict[str, Any] | None
    provider_message_id: str | None
    attempts: int
    error: dict[str, str] | None
    idempotency_key: str | None
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    #: Read from the message's events only (not kept in the read model's rows).
    fallback_message_id: UUID | None = None
    fallback_of: UUID | None = None
    direction: str = "outbound"
    conversation_id: UUID | None = None
    reply_to: UUID | None = None
    #: An inbound message's attachments (None for an outbound one).
    media: list[dict[str, Any]] | None = None
    #: An outbound message's category, and when it is to be attempted (None: at once).
    category: str | None = None
    scheduled_at: datetime | None = None

    @classmethod
    def of(cls, message: Message) -> MessageState:
        content = message.content
        sender = sender_of(message)
        return cls(
            id=message.id,
            channel=message.channel.value,
            to=message.to.e164,
            sender=sender,
            driver=message.driver,
            status=message.status.value,
            body=content.text if isinstance(content, Body) else None,
            template=(
                {"name": content.name, "variables": list(content.variables)}
                if isinstance(content, Template)
                else None
            ),
            provider_message_id=message.provider_message_id,
            attempts=message.attempts,
            error=message.error,
            idempotency_key=message.idempotency_key,
            meta=message.meta,
            created_at=message.created_on,
            updated_at=message.modified_on,
            fallback_message_id=message.fallback_message_id,
            fallback_of=message.fallback_of,
            conversation_id=conversation_id_for(
                message.channel.value, business_number(sender), message.to.e164
            ),
            reply_to=message.reply_to,
            category=message.category.value,
            scheduled_at=message.scheduled_at,
        )

    @classmethod
    def of_inbound(cls, message: InboundMessage) -> MessageState:
        return cls(
            id=message.id,
            channel=message.channel.value,
            to=message.recipient,
            sender=message.sender,
            driver=message.provider,
            status=RECEIVED,
            body=message.body,
            template=None,
            provider_message_id=message.provider_message_id,
            attempts=0,
            error=None,
            idempotency_key=None,
            meta={},
            created_at=message.received_at,
            updated_at=message.received_at,
            direction="inbound",
            conversation_id=message.conversation_id,
            media=list(message.media),
        )

    @classmethod
    def of_row(cls, row: MessageRow) -> MessageState:
        error = (
            {"code": row.error_code, "message": row.error_message or ""} if row.error_code else None
        )
        return cls(
            id=row.id,
            channel=row.channel,
            to=row.to,
            sender=row.sender,
            driver=row.driver,
            status=row.status,
            body=row.body,
            template=row.template,
            provider_message_id=row.provider_message_id,
            attempts=row.attempts,
            error=error,
            idempotency_key=row.idempotency_key,
            meta=row.meta,
            created_at=row.created_at,
            updated_at=row.updated_at,
            direction=row.direction,
            conversation_id=row.conversation_id,
            reply_to=row.reply_to,
            media=row.media,
            category=row.category,
            scheduled_at=row.scheduled_at,
        )

    def as_dict(self) -> dict[str, Any]:
        """The message resource of the contract (body or template only when stored)."""
        resource: dict[str, Any] = {
            "id": str(self.id),
            "direction": self.direction,
            "channel": self.channel,
            "to": self.to,
            "from": self.sender,
            "driver": self.driver,
            "status": self.status,
        }
        if self.body is not None:
            resource["body"] = self.body
        if self.template is not None:
            resource["template"] = self.template
        resource.update(
            provider_message_id=self.provider_message_id,
            attempts=self.attempts,
            error=self.error,
            idempotency_key=self.idempotency_key,
            meta=self.meta,
            conversation_id=None if self.conversation_id is None else str(self.conversation_id),
            reply_to=None if self.reply_to is None else str(self.reply_to),
            category=self.category,
            scheduled_at=None if self.scheduled_at is None else rfc3339(self.scheduled_at),
            created_at=rfc3339(self.created_at),
            updated_at=rfc3339(self.updated_at),
        )
        if self.media is not None:
            resource["media"] = [public_media(item) for item in self.media]
        # A fallback's links, when there are (shown where the message is read from its
        # events: the single message and a send's answer).
        if self.fallback_message_id is not None:
            resource["fallback_message_id"] = str(self.fallback_message_id)
        if self.fallback_of is not None:
            resource["fallback_of"] = str(self.fallback_of)
        return resource


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of :meth:`ConversaService.send`.

    ``ok`` is true when the provider has accepted the message (now or, for a replayed
    idempotent send, earlier); a replay of a send still in flight is not ``ok`` yet and
    has no ``error`` either: its ``status`` is ``queued``. ``replayed`` is true when the
    idempotency key had already been used for this same request and nothing new was sent.
    """

    ok: bool
    message_id: UUID
    status: str
    provider_message_id: str | None
    error: dict[str, str] | None
    replayed: bool
    message: MessageState

    @classmethod
    def of(cls, message: Message, *, replayed: bool) -> SendResult:
        state = MessageState.of(message)
        return cls(
            ok=state.status in ("sent", "delivered", "read"),
            message_id=state.id,
            status=state.status,
            provider_message_id=state.provider_message_id,
            error=state.error,
            replayed=replayed,
            message=state,
        )
