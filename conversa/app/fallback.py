"""WhatsApp-to-SMS fallback: a WhatsApp send may ask that its content go out once as an SMS
if the WhatsApp message fails for a reason about the recipient (not on WhatsApp: Meta
131026, Twilio 63003/63024; or undelivered), or has no ``delivered`` within
``after_seconds``::

    {"channel": "whatsapp", ..., "fallback": {"channel": "sms", "after_seconds": 600}}

The request is recorded on the WhatsApp message (``FallbackRequested``, with the SMS text of
a template, filled in, from the templates file's ``sms = { text = "..." }``). The
:class:`FallbackRunner` of each worker follows the event store: the requests, and the
failures, deliveries and fallbacks of the messages that made one. When a message's
failure is about the recipient, or its time is up undelivered, it sends the SMS through the
service with an idempotency key derived from the WhatsApp message's id (so the SMS is
recorded once, whoever sends it and however often), then records ``FellBack`` on the
original; the SMS carries ``FallbackOf``. A restarted worker reads the requests again from
the beginning, so a timer survives it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.utils import get_topic

from conversa.app.messages import load_message, update_message
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidRequest
from conversa.domain.message import Message
from conversa.domain.status import Status

if TYPE_CHECKING:
    from conversa.app.application import ConversaApp
    from conversa.app.writer import Writer

log = logging.getLogger(__name__)

#: The longest wait for a delivery before falling back.
MAX_AFTER_SECONDS = 30 * 86400
#: The idempotency scope of fallback messages: their ids derive from the original's.
SCOPE = "conversa-fallback"
#: Failure codes that say the recipient cannot get the WhatsApp message (a driver's code
#: or a status report's). An ``undelivered`` status says so too.
RECIPIENT_CODES = frozenset(
    {
        "whatsapp_cloud_131026",
        "131026",
        "twilio_63003",
        "63003",
        "twilio_63024",
        "63024",
    }
)

REQUESTED = get_topic(Message.FallbackRequested)
FELL_BACK = get_topic(Message.FellBack)
FAILED = get_topic(Message.Failed)
SETTLED = [get_topic(Message.Delivered), get_topic(Message.Read)]
TOPICS = [REQUESTED, FELL_BACK, FAILED, *SETTLED]
_KEYS = frozenset({"channel", "after_seconds"})


@dataclass(frozen=True, slots=True)
class FallbackRequest:
    channel: Channel
    after_seconds: int


def parse_fallback(value: object, channel: Channel) -> FallbackRequest:
    """The ``fallback`` option of a send; :class:`InvalidRequest` naming the field."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            "fallback", 'fallback must be an object like {"channel": "sms", "after_seconds": 600}'
        )
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise InvalidRequest(f"fallback.{unknown[0]}", f"unknown fallback field {unknown[0]}")
    if channel is not Channel.WHATSAPP:
        raise InvalidRequest("fallback", "only a whatsapp send may fall back to another channel")
    if value.get("channel") != Channel.SMS.value:
        raise InvalidRequest("fallback.channel", 'the fallback channel must be "sms"')
    after = value.get("after_seconds")
    if isinstance(after, bool) or not isinstance(after, int) or not 1 <= after <= MAX_AFTER_SECONDS:
        raise InvalidRequest(
            "fallback.after_seconds",
            f"after_seconds must be a whole number of seconds from 1 to {MAX_AFTER_SECONDS}",
        )
    return FallbackRequest(Channel.SMS, after)


def recipient_failure(message: Message) -> bool:
    """Whether the message failed for a reason about its recipient."""
    if message.status is Status.UNDELIVERED:
        return True
    return message.status is Status.FAILED and (message.error or {}).get("code") in RECIPIENT_CODES


#: Sends the fallback of a message and returns the fallback's id (idempotently).
SendFallback = Callable[[Message], UUID]


class FallbackRunner:
    """Sends the fallbacks that are due. One per worker process; thread-safe."""

    def __init__(self, app: ConversaApp, writer: Writer, send: SendFallback) -> None:
        self.app = app
        self.writer = writer
        self.send = send
        self._lock = threading.Lock()
        self._position: int | None = None
        self._pending: dict[UUID, datetime] = {}  # message id: when its time is up
        self._urgent: set[UUID] = set()  # pending ones that failed since the last look

    def run(self, now: datetime) -> int:
        """Send every fallback that is due; return how many were sent."""
        with self._lock:
            self._follow()
            due = [i for i, at in self._pending.items() if at <= now or i in self._urgent]
            self._urgent.clear()
            sent = 0
            for message_id in due:
                try:
                    sent += self._settle(message_id, now)
                except Exception:
                    # Kept pending: the next round tries again.
                    log.exception("fallback of message_id=%s failed", message_id)
            return sent

    def _follow(self) -> None:
        if self._position is None:
            # At start, only the requests and fallbacks of all time (not every failure and
            # delivery ever recorded); then each request still open is looked at once, for
            # what happened to it while no worker followed.
            head = self.app.recorder.max_notification_id() or 0
            for notification in _notifications(self.app, None, [REQUESTED, FELL_BACK]):
                self._take(notification)
            self._urgent.update(self._pending)
            self._position = head
        for notification in _notifications(self.app, self._position, TOPICS):
            self._position = notification.id
            self._take(notification)

    def _take(self, notification: Any) -> None:
        message_id = notification.originator_id
        if notification.topic == REQUESTED:
            event = self.app.mapper.to_domain_event(notification)
            assert isinstance(event, Message.FallbackRequested)
            self._pending[message_id] = event.due_at
        elif message_id not in self._pending:
            return
        elif notification.topic == FAILED:
            self._urgent.add(message_id)
        else:  # delivered, read, or fell back already
            self._pending.pop(message_id, None)

    def _settle(self, message_id: UUID, now: datetime) -> bool:
        message = load_message(self.app, message_id)
        if (
            message.fallback is None
            or message.fallback_message_id is not None
            or message.status in (Status.DELIVERED, Status.READ, Status.CANCELLED)
        ):
            self._pending.pop(message_id, None)
            return False
        _channel, due_at, _text = message.fallback
        if recipient_failure(message):
            reason = f"failed: {(message.error or {}).get('code', message.status.value)}"
        elif due_at <= now:
            reason = "not delivered in time"
        else:
            return False  # failed for another reason: the timer decides
        fallback_id = self.send(message)
        update_message(self.app, self.writer, message_id, _recorder(fallback_id, reason))
        self._pending.pop(message_id, None)
        log.info("message_id=%s fell back to message_id=%s (%s)", message_id, fallback_id, reason)
        return True


def _recorder(fallback_id: UUID, reason: str) -> Callable[[Message], None]:
    def record(message: Message) -> None:
        message.record_fallback(fallback_id, reason)

    return record


def _notifications(app: ConversaApp, after: int | None, topics: list[str]) -> Iterable[Any]:
    start = after
    while page := app.recorder.select_notifications(
        start=start, limit=1000, topics=topics, inclusive_of_start=False
    ):
        yield from page
        start = page[-1].id
