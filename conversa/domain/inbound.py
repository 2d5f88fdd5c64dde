"""The InboundMessage aggregate: one message a contact sent us, and the conversation it
belongs to.

An inbound message is recorded once: its id is derived from the provider and the
provider's own id for it (Twilio's ``MessageSid``, Meta's ``wamid``), so a provider's
retry of the same message creates the same aggregate, which the event store refuses a
second time. Nothing happens to it after it is received.

A conversation is identified by (channel, our number, the contact's number): both
directions of one exchange derive the same id (:func:`conversation_id_for`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from conversa.domain.channel import Channel

INBOUND_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/inbound-messages")
CONVERSATION_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/conversations")
#: The status of every inbound message.
RECEIVED = "received"


def inbound_message_id_for(provider: str, provider_message_id: str) -> UUID:
    """The one id an inbound message of this provider always has."""
    return uuid5(INBOUND_NAMESPACE, f"{provider}\x00{provider_message_id}")


def conversation_id_for(channel: str, business_number: str | None, contact: str) -> UUID:
    """The conversation of ``contact`` with our ``business_number`` on ``channel`` (numbers
    in E.164; an outbound message sent without a ``from`` has no business number)."""
    return uuid5(CONVERSATION_NAMESPACE, f"{channel}\x00{business_number or ''}\x00{contact}")


class InboundMessage(Aggregate):
    class Received(Aggregate.Created):
        """``sender`` is the contact, ``recipient`` our number, both E.164. ``body`` is
        None when bodies are not stored (or the message has none); ``kind`` is what the
        provider called it (``text``, ``image``, ``location``, ...; ``unsupported`` for
        anything else); ``media``: each attachment's ``content_type`` and how to fetch it
        (``url`` on Twilio, ``id`` on Meta); ``details``: what else the kind carries (a
        button's payload, a location, a reaction), None when bodies are not stored."""

        provider: str
        provider_message_id: str
        channel: str
        sender: str
        recipient: str
        body: str | None
        kind: str
        media: list[dict[str, Any]]
        details: dict[str, Any] | None
        profile_name: str | None
        context_id: str | None
        conversation_id: UUID

    @event(Received)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: ARG002 - taken by the library as the new aggregate's id
        provider: str,
        provider_message_id: str,
        channel: str,
        sender: str,
        recipient: str,
        body: str | None,
        kind: str,
        media: list[dict[str, Any]],
        details: dict[str, Any] | None,
        profile_name: str | None,
        context_id: str | None,
        conversation_id: UUID,
    ) -> None:
        self.provider = provider
        self.provider_message_id = provider_message_id
        self.channel = Channel(channel)
        self.sender = sender
        self.recipient = recipient
        self.body = body
        self.kind = kind
        self.media = media
        self.details = details
        self.profile_name = profile_name
        self.context_id = context_id
        self.conversation_id = conversation_id

    @classmethod
    def receive(
        cls,
        *,
        provider: str,
        provider_message_id: str,
        channel: Channel,
        sender: str,
        recipient: str,
        body: str | None,
        kind: str = "text",
        media: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
        profile_name: str | None = None,
        context_id: str | None = None,
    ) -> InboundMessage:
        return cls(
            id=inbound_message_id_for(provider, provider_message_id),
            provider=provider,
            provider_message_id=provider_message_id,
            channel=channel.value,
            sender=sender,
            recipient=recipient,
            body=body,
            kind=kind,
            media=list(media or []),
            details=details,
            profile_name=profile_name,
            context_id=context_id,
            conversation_id=conversation_id_for(channel.value, recipient, sender),
        )

    @property
    def received_at(self) -> datetime:
        return self.created_on
