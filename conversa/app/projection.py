"""The ``conversa_messages`` read model: its rows, how events change them, and its port."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder

from conversa.app.conversations import ConversationPage, ConversationQuery, ConversationRow
from conversa.domain.content import Body, Template
from conversa.domain.inbound import RECEIVED, InboundMessage, conversation_id_for
from conversa.domain.message import Message
from conversa.domain.status import Status


class ProjectionOutOfSequence(Exception):
    """An event arrived that does not follow the row's last applied version.

    The projection checks this on every event, so an event applied twice or skipped
    stops it loudly instead of leaving a wrong row behind.
    """


@dataclass(frozen=True, slots=True)
class MessageRow:
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
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    #: When a dispatcher should next try (a retry, or the end of an attempt's lease);
    #: None once the message has left ``queued``.
    next_attempt_at: datetime | None = None
    #: ``outbound`` or ``inbound``. An inbound row's ``to`` is our number, ``sender`` the
    #: contact, ``driver`` the provider it came through, its status ``received``.
    direction: str = "outbound"
    conversation_id: UUID | None = None
    #: An inbound message's attachments (``content_type`` and how to fetch each).
    media: list[dict[str, Any]] | None = None
    #: The inbound message an outbound one answers.
    reply_to: UUID | None = None
    #: An outbound message's category (None for an inbound one), and when its first
    #: attempt is due when it was scheduled (``send_at``, quiet hours).
    category: str | None = None
    scheduled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    status: str | None = None
    channel: str | None = None
    to: str | None = None
    direction: str | None = None
    page: int = 1
    per_page: int = 25
    #: The provider driver the message went (or came) through.
    driver: str | None = None
    #: Created at or after ``since``, and before ``until``.
    since: datetime | None = None
    until: datetime | None = None
    #: When the exact counters cannot answer the total (a number, driver or time filter),
    #: count at most this many rows (``total`` is then a lower bound: see
    #: ``MessagePage.total_exact``); None counts them all.
    count_limit: int | None = None


@dataclass(frozen=True, slots=True)
class MessagePage:
    rows: list[MessageRow]
    total: int
    #: False when ``total`` stopped at the query's ``count_limit`` (there are more).
    total_exact: bool = True


#: Each message event's kind, as the fold tells them apart (an event of another class of
#: Message takes the kind of its nearest known base class, or "other").
EVENT_KINDS: dict[type, str] = {
    InboundMessage.Received: "received",
    Message.Queued: "queued",
    Message.AttemptStarted: "attempt_started",
    Message.Retried: "retried",
    Message.Sent: "sent",
    Message.Delivered: "delivered",
    Message.Read: "read",
    Message.Failed: "failed",
    Message.Cancelled: "cancelled",
}


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What one event of a message says to its row, in plain values.

    ``fields`` holds the event's attributes the fold reads, as plain values: ``to`` the
    E.164 text, ``body`` and ``template`` (a dict) instead of the content object. They come
    either from a domain event (:func:`facts_of_event`) or straight from its stored state
    (:mod:`conversa.app.stored_facts`), which skips building value objects.
    """

    kind: str
    message_id: UUID
    version: int
    timestamp: datetime
    fields: Mapping[str, Any]


def kind_of(cls: type) -> str:
    for base in cls.__mro__:
        kind = EVENT_KINDS.get(base)
        if kind is not None:
            return kind
    return "other"


def facts_of_event(event: object) -> EventFacts:
    if not isinstance(event, Message.Event | InboundMessage.Event):
        raise TypeError(f"not an event of a message: {type(event).__qualname__}")
    kind = kind_of(type(event))
    fields: dict[str, Any] = dict(vars(event))
    fields.setdefault("reply_to", None)
    if kind == "queued":
        content = fields.get("content")
        fields["to"] = fields["to"].e164
        fields["body"] = content.text if isinstance(content, Body) else None
        fields["template"] = (
            {"name": content.name, "variables": list(content.variables)}
            if isinstance(content, Template)
            else None
        )
    return EventFacts(kind, event.originator_id, event.originator_version, event.timestamp, fields)


def apply_event(row: MessageRow | None, event: object) -> MessageRow:
    """The row after ``event``, given the row before it (None before ``Queued``)."""
    return apply_facts(row, facts_of_event(event))


def apply_facts(row: MessageRow | None, facts: EventFacts) -> MessageRow:
    """The row after the event ``facts`` describe, given the row before it."""
    return fold_facts(row, (facts,))


_QUEUED = Status.QUEUED.value
INBOUND = "inbound"
#: The kinds of event that make a row.
CREATING = ("queued", "received")
#: Status.merge over the statuses' values: the fold keeps the status as text.
_MERGE = {(a.value, b.value): a.merge(b).value for a in Status for b in Status}


def fold_facts(row: MessageRow | None, events: Iterable[EventFacts]) -> MessageRow:
    """The row after ``events`` (one message's, in version order), given the row before
    them (None before ``Queued``). The row is built once, however many events there are:
    this is the projection's inner loop."""
    facts = iter(events)
    if row is None:
        first = next(facts)
        if first.kind == "received":
            return _fold_received(first, facts)
        if first.kind != "queued":
            raise ProjectionOutOfSequence(
                f"message {first.message_id}: event version {first.version} after nothing"
            )
        fields = first.fields
        message_id, created_at = first.message_id, first.timestamp
        channel, to, sender = fields["channel"], fields["to"], fields["sender"]
        driver, body, template = fields["driver"], fields["body"], fields["template"]
        idempotency_key, meta = fields["idempotency_key"], fields["meta"]
        status, provider_message_id, attempts = _QUEUED, None, 0
        error_code, error_message = None, None
        updated_at, version = first.timestamp, first.version
        next_attempt_at = fields["next_attempt_at"]
        reply_to = fields["reply_to"]
        category, scheduled_at = fields.get("category"), fields.get("scheduled_at")
        conversation_id: UUID | None = conversation_id_for(channel, business_number(sender), to)
    else:
        if row.direction == INBOUND:
            return _fold_received_more(row, facts)
        reply_to, conversation_id = row.reply_to, row.conversation_id
        category, scheduled_at = row.category, row.scheduled_at
        message_id, created_at = row.id, row.created_at
        channel, to, sender, driver = row.channel, row.to, row.sender, row.driver
        body, template, idempotency_key, meta = (
            row.body,
            row.template,
            row.idempotency_key,
            row.meta,
        )
        status, provider_message_id = row.status, row.provider_message_id
        attempts, error_code, error_message = row.attempts, row.error_code, row.error_message
        updated_at, version, next_attempt_at = row.updated_at, row.version, row.next_attempt_at
    for f in facts:
        kind, fields = f.kind, f.fields
        if kind in CREATING:
            raise ProjectionOutOfSequence(f"message {f.message_id} queued twice")
        if f.version != version + 1:
            raise ProjectionOutOfSequence(
                f"message {f.message_id}: event version {f.version} after version {version}"
            )
        version, updated_at = f.version, f.timestamp
        if kind == "attempt_started":
            next_attempt_at = fields["lease_until"]
        elif kind == "retried":
            attempts += 1
            error_code, error_message = fields["code"], fields["message"]
            next_attempt_at = fields["next_attempt_at"]
        elif kind == "sent":
            provider_message_id = fields["provider_message_id"] or provider_message_id
            attempts += fields["source"] == "driver"
            # A failover list's member that sent it, rather than the list's first.
            driver = fields.get("driver") or driver
            status = _MERGE[status, "sent"]
            if sender is None and (sent_from := fields.get("sender")) is not None:
                # Queued without a ``from``: the number the driver sent from (the first
                # one told, as the aggregate keeps it) makes its ``from`` and its
                # conversation, the one the contact's answers belong to.
                sender = sent_from
                conversation_id = conversation_id_for(channel, business_number(sender), to)
        elif kind == "delivered":
            status = _MERGE[status, "delivered"]
        elif kind == "read":
            status = _MERGE[status, "read"]
        elif kind == "failed":
            attempts += fields["source"] == "driver"
            error_code, error_message = fields["code"], fields["message"]
            status = _MERGE[status, Status(fields["status"]).value]
        elif kind == "cancelled":
            status = _MERGE[status, "cancelled"]
        if status != _QUEUED:
            next_attempt_at = None
    return MessageRow(
        id=message_id,
        channel=channel,
        to=to,
        sender=sender,
        driver=driver,
        status=status,
        body=body,
        template=template,
        provider_message_id=provider_message_id,
        attempts=attempts,
        error_code=error_code,
        error_message=error_message,
        idempotency_key=idempotency_key,
        meta=meta,
        created_at=created_at,
        updated_at=updated_at,
        version=version,
        next_attempt_at=next_attempt_at,
        conversation_id=conversation_id,
        reply_to=reply_to,
        category=category,
        scheduled_at=scheduled_at,
    )


def business_number(sender: str | None) -> str | None:
    """Our number as an outbound message's ``from`` gives it (``whatsapp:`` dropped), the
    business number of its conversation; None without a ``from``."""
    if sender is None:
        return None
    return sender.removeprefix("whatsapp:").strip()


def _fold_received(first: EventFacts, rest: Iterator[EventFacts]) -> MessageRow:
    fields = first.fields
    row = MessageRow(
        id=first.message_id,
        channel=fields["channel"],
        to=fields["recipient"],
        sender=fields["sender"],
        driver=fields["provider"],
        status=RECEIVED,
        body=fields["body"],
        template=None,
        provider_message_id=fields["provider_message_id"],
        attempts=0,
        error_code=None,
        error_message=None,
        idempotency_key=None,
        meta={},
        created_at=first.timestamp,
        updated_at=first.timestamp,
        version=first.version,
        direction=INBOUND,
        conversation_id=fields["conversation_id"],
        media=list(fields["media"]),
    )
    return _fold_received_more(row, rest)


def _fold_received_more(row: MessageRow, rest: Iterator[EventFacts]) -> MessageRow:
    # Nothing happens to an inbound message after it is received.
    for f in rest:
        raise ProjectionOutOfSequence(
            f"message {f.message_id}: event version {f.version} after its Received"
        )
    return row


#: The columns the read model keeps exact row counters by (every combination of their
#: values that has rows), so that a list's ``total`` for these filters is a sum over a few
#: counters instead of a count over the table. Adding a filter column (say ``direction``)
#: is adding it here and to the counters table, then ``conversa projection rebuild``.
COUNTED = ("direction", "channel", "status")


def count_key(row: MessageRow) -> tuple[str, ...]:
    """The row's counter: its values of :data:`COUNTED`."""
    return (row.direction, row.channel, row.status)


@dataclass(slots=True)
class RowChanges:
    """What one batch of events does to the table, for :meth:`MessagesView.store`."""

    #: Rows that were not in the table before the batch (the view refuses one that is).
    created: list[MessageRow] = field(default_factory=list)
    #: Rows that were in the table and stay, in their new state.
    updated: list[MessageRow] = field(default_factory=list)
    #: Rows that were in the table and go (``CONVERSA_LOG_MESSAGES=false``).
    removed: list[UUID] = field(default_factory=list)
    #: How each counter (:func:`count_key`) changes; no zero entries.
    counts: dict[tuple[str, ...], int] = field(default_factory=dict)
    #: The conversations whose rows came, went or moved (a message queued without a
    #: ``from`` moves once its driver says which number it sent from): the view computes
    #: them again from their rows. Other updates change no conversation.
    conversations: set[UUID] = field(default_factory=set)
    #: How each hourly counter (:mod:`conversa.app.hourly`) changes; no zero entries.
    hourly: dict[HourKey, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.removed)


class MessagesView(TrackingRecorder):
    """The read model's storage. Every write records its tracking position in the same
    transaction, so a crash can neither apply an event twice nor skip one; the counters
    of :data:`COUNTED` move in that transaction too."""

    @abstractmethod
    def load(self, ids: Collection[UUID]) -> dict[UUID, MessageRow]:
        """The current rows of these messages (those that exist)."""

    @abstractmethod
    def store(self, changes: RowChanges, tracking: Tracking) -> None:
        """Apply ``changes`` (rows, counters) and move the position to ``tracking``,
        atomically. Raise ``IntegrityError`` when the position is not ahead of the stored
        one, ``ProjectionOutOfSequence`` when a created row exists already or an updated
        or removed one does not."""

    @abstractmethod
    def events_after(self, position: int, limit: int) -> list[tuple[int, StoredRecord]]:
        """Up to ``limit`` stored events after notification ``position``, in notification
        order, each with its notification id (what following the store reads)."""

    @abstractmethod
    def stored_events(self, upto: int) -> Iterator[list[StoredRecord]]:
        """Every stored event with a notification id up to ``upto``, of every aggregate,
        grouped by aggregate and in version order within each (what a rebuild folds), a
        chunk at a time."""

    @abstractmethod
    def replace_all(
        self,
        rows: Iterable[MessageRow],
        tracking: Tracking | None,
        hourly: Mapping[HourKey, int] | None = None,
    ) -> int:
        """Make ``rows`` the whole table, the counters theirs and the position
        ``tracking`` (none: forget it), atomically; return how many rows. Until the
        change commits, readers see the table as it was. ``hourly``, read once ``rows``
        are exhausted (a rebuild fills it while it folds them), replaces the hourly
        counters (None: they are emptied)."""

    @abstractmethod
    def hourly(self, since: int) -> dict[HourKey, int]:
        """The hourly counters (non-zero ones) of hours ``since`` (hours since the epoch)
        and later, read over the counters' primary key."""

    @abstractmethod
    def due(self, now: datetime, limit: int) -> list[UUID]:
        """Messages whose next attempt is due, earliest first (served by an index)."""

    @abstractmethod
    def next_due(self, now: datetime) -> datetime | None:
        """The earliest next attempt due after ``now`` (a scheduled send, a retry, a
        lease's end), served by the due index; None when there is none."""

    @abstractmethod
    def get(self, message_id: UUID) -> MessageRow | None: ...

    @abstractmethod
    def query(self, query: MessageQuery) -> MessagePage:
        """Rows matching the filters, newest first, one page of them, and the total."""

    @abstractmethod
    def counters(self) -> dict[tuple[str, ...], int]:
        """The stored counters (non-zero ones), by :func:`count_key`."""

    @abstractmethod
    def all_rows(self) -> list[MessageRow]:
        """Every row, ordered by id (for comparisons and exports)."""

    # ``conversa_conversations``: written with the rows, in the same transaction.

    @abstractmethod
    def conversations(self, query: ConversationQuery) -> ConversationPage:
        """Conversations matching the filters, newest activity first, one page, the total."""

    @abstractmethod
    def conversation(self, conversation_id: UUID) -> ConversationRow | None: ...

    @abstractmethod
    def thread(self, conversation_id: UUID, page: int, per_page: int) -> list[MessageRow]:
        """One page of a conversation's messages, both directions, oldest first."""

    @abstractmethod
    def all_conversations(self) -> list[ConversationRow]:
        """Every conversation, ordered by id (for comparisons)."""


#: (hour since the epoch, kind, channel, driver, detail): one hourly counter.
HourKey = tuple[int, str, str, str, str]

#: A stored event as a rebuild reads it, not decoded: originator id, version, topic and
#: state.
StoredRecord = tuple[UUID, int, str, bytes]
