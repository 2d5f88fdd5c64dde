"""The ``conversa_messages`` read model: its rows, how events change them, and its port."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking, TrackingRecorder

from conversa.domain.content import Body, Template
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


@dataclass(frozen=True, slots=True)
class MessageQuery:
    status: str | None = None
    channel: str | None = None
    to: str | None = None
    page: int = 1
    per_page: int = 25


@dataclass(frozen=True, slots=True)
class MessagePage:
    rows: list[MessageRow]
    total: int


def apply_event(row: MessageRow | None, event: object) -> MessageRow:
    """The row after ``event``, given the row before it (None before ``Queued``)."""
    if not isinstance(event, Message.Event):
        raise TypeError(f"not an event of a message: {type(event).__qualname__}")
    if isinstance(event, Message.Queued):
        if row is not None:
            raise ProjectionOutOfSequence(f"message {event.originator_id} queued twice")
        body = event.content.text if isinstance(event.content, Body) else None
        template = (
            {"name": event.content.name, "variables": list(event.content.variables)}
            if isinstance(event.content, Template)
            else None
        )
        return MessageRow(
            id=event.originator_id,
            channel=event.channel,
            to=event.to.e164,
            sender=event.sender,
            driver=event.driver,
            status=Status.QUEUED.value,
            body=body,
            template=template,
            provider_message_id=None,
            attempts=0,
            error_code=None,
            error_message=None,
            idempotency_key=event.idempotency_key,
            meta=event.meta,
            created_at=event.timestamp,
            updated_at=event.timestamp,
            version=event.originator_version,
            next_attempt_at=event.next_attempt_at,
        )
    if row is None or event.originator_version != row.version + 1:
        have = "nothing" if row is None else f"version {row.version}"
        raise ProjectionOutOfSequence(
            f"message {event.originator_id}: event version {event.originator_version} after {have}"
        )
    changes: dict[str, Any] = {"version": event.originator_version, "updated_at": event.timestamp}
    status = Status(row.status)
    if isinstance(event, Message.AttemptStarted):
        changes["next_attempt_at"] = event.lease_until
    elif isinstance(event, Message.Retried):
        changes.update(
            attempts=row.attempts + 1,
            error_code=event.code,
            error_message=event.message,
            next_attempt_at=event.next_attempt_at,
        )
    elif isinstance(event, Message.Sent):
        changes.update(
            provider_message_id=event.provider_message_id or row.provider_message_id,
            attempts=row.attempts + (event.source == "driver"),
            # A failover list's member that sent it, rather than the list's first.
            driver=event.driver or row.driver,
        )
        status = status.merge(Status.SENT)
    elif isinstance(event, Message.Delivered):
        status = status.merge(Status.DELIVERED)
    elif isinstance(event, Message.Read):
        status = status.merge(Status.READ)
    elif isinstance(event, Message.Failed):
        changes.update(
            attempts=row.attempts + (event.source == "driver"),
            error_code=event.code,
            error_message=event.message,
        )
        status = status.merge(Status(event.status))
    changes["status"] = status.value
    if status is not Status.QUEUED:
        changes["next_attempt_at"] = None
    return replace(row, **changes)


class MessagesView(TrackingRecorder):
    """The read model's storage. Every write records its tracking position in the same
    transaction, so a crash can neither apply an event twice nor skip one."""

    @abstractmethod
    def load(self, ids: Collection[UUID]) -> dict[UUID, MessageRow]:
        """The current rows of these messages (those that exist)."""

    @abstractmethod
    def store(
        self, rows: Sequence[MessageRow], tracking: Tracking, removed: Collection[UUID] = ()
    ) -> None:
        """Upsert ``rows``, delete the ``removed`` ones and move the position to
        ``tracking``, atomically."""

    @abstractmethod
    def due(self, now: datetime, limit: int) -> list[UUID]:
        """Messages whose next attempt is due, earliest first (served by an index)."""

    @abstractmethod
    def reset(self, application_name: str) -> None:
        """Empty the table and forget the position, atomically."""

    @abstractmethod
    def get(self, message_id: UUID) -> MessageRow | None: ...

    @abstractmethod
    def query(self, query: MessageQuery) -> MessagePage:
        """Rows matching the filters, newest first, one page of them, and the total."""

    @abstractmethod
    def all_rows(self) -> list[MessageRow]:
        """Every row, ordered by id (for comparisons and exports)."""
