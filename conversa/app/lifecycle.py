"""The lifecycle feed: public events read from the event store, in its order.

Each lifecycle event's ``event_id`` is its position in the store, so a consumer can resume
after any event, and two deliveries of one event carry the same id.
"""

from __future__ import annotations

from eventsourcing.utils import get_topic

from conversa.app.application import ConversaApp
from conversa.app.results import public_media
from conversa.domain.inbound import InboundMessage
from conversa.domain.message import Message
from conversa.domain.recipient import Recipient
from conversa.events import (
    LifecycleEvent,
    MessageDelivered,
    MessageFailed,
    MessageRead,
    MessageReceived,
    MessageSent,
    RecipientOptedIn,
    RecipientOptedOut,
)

#: Only these domain events become lifecycle events; the store filters on them.
TOPICS = [
    get_topic(c)
    for c in (
        Message.Sent,
        Message.Delivered,
        Message.Read,
        Message.Failed,
        InboundMessage.Received,
        Recipient.OptedOut,
        Recipient.OptedIn,
    )
]


class LifecycleFeed:
    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def read(self, after: int, limit: int = 100) -> tuple[list[LifecycleEvent], int]:
        """Lifecycle events after position ``after``, and the position read up to."""
        notifications = self.app.recorder.select_notifications(
            start=after, limit=limit, topics=TOPICS, inclusive_of_start=False
        )
        events = []
        for notification in notifications:
            domain_event = self.app.mapper.to_domain_event(notification)
            event = self.lifecycle_event(notification.id, domain_event)
            if event is not None:
                events.append(event)
        return events, notifications[-1].id if notifications else after

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def has_events(self, after: int, up_to: int) -> bool:
        """Whether any lifecycle event lies after position ``after``, up to ``up_to``."""
        return bool(
            self.app.recorder.select_notifications(
                start=after, limit=1, stop=up_to, topics=TOPICS, inclusive_of_start=False
            )
        )

    def lifecycle_event(self, position: int, event: object) -> LifecycleEvent | None:
        if isinstance(event, InboundMessage.Received):
            return MessageReceived(
                position,
                event.originator_id,
                event.channel,
                event.recipient,
                event.provider,
                event.provider_message_id,
                event.timestamp,
                conversation_id=event.conversation_id,
                sender=event.sender,
                body=event.body,
                media=[public_media(item) for item in event.media],
            )
        if isinstance(event, Recipient.OptedOut | Recipient.OptedIn):
            return self._recipient_event(position, event)
        if not isinstance(event, Message.Event):
            return None
        if isinstance(event, Message.Sent) and event.source != "driver":
            return None  # a report said "sent" first; the driver's own Sent is the event
        # The message as it was right after this event: who it was for, through what.
        message: object = self.app.repository.get(
            event.originator_id, version=event.originator_version
        )
        assert isinstance(message, Message)
        if isinstance(event, Message.Sent) and message.status.is_final:
            # A "failed" report beat the driver's answer: the late Sent only records the
            # provider's id. The message failed; subscribers must not hear it was sent.
            return None
        common = (
            position,
            message.id,
            message.channel.value,
            message.to.e164,
            message.driver,
            message.provider_message_id,
            event.timestamp,
        )
        if isinstance(event, Message.Sent):
            return MessageSent(*common)
        if isinstance(event, Message.Delivered):
            return MessageDelivered(*common)
        if isinstance(event, Message.Read):
            return MessageRead(*common)
        if isinstance(event, Message.Failed):
            error = {"code": event.code, "message": event.message}
            return MessageFailed(*common, error=error, status=event.status)
        return None

    def _recipient_event(
        self, position: int, event: Recipient.OptedOut | Recipient.OptedIn
    ) -> LifecycleEvent:
        registered = next(iter(self.app.events.get(event.originator_id, limit=1)))
        assert isinstance(registered, Recipient.Registered)
        kind = RecipientOptedOut if isinstance(event, Recipient.OptedOut) else RecipientOptedIn
        return kind(
            position,
            event.originator_id,
            event.channel,
            registered.number,
            "",
            None,
            event.timestamp,
            number=registered.number,
            scope=event.scope,
            source=event.source,
            keyword=event.keyword,
            code=event.code,
            cause_message_id=event.message_id,
        )
