"""The ports the application uses: provider drivers and the storage backend."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from conversa.domain.channel import Channel
from conversa.domain.content import Content
from conversa.domain.phone import PhoneNumber

if TYPE_CHECKING:
    from conversa.app.application import ConversaApp
    from conversa.app.projection import MessagesView


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a driver needs to hand one message to its provider."""

    message_id: UUID
    channel: Channel
    to: PhoneNumber
    sender: str | None
    content: Content
    #: The provider's id of the inbound message this one answers, for a driver that
    #: quotes it (Meta's ``context.message_id``); others ignore it.
    quote: str | None = None


@dataclass(frozen=True, slots=True)
class DriverError:
    """Why an attempt failed. ``transient``: the same request may succeed later.
    ``reroutable``: a permanent refusal about the provider, our account or the route
    (credentials, a region not enabled, no route), not about the recipient or the
    content, so another provider may succeed where this one refused."""

    code: str
    message: str
    transient: bool = False
    reroutable: bool = False


@dataclass(frozen=True, slots=True)
class DriverResult:
    """``parts``: when the provider split the message into several parts with an id each
    (a long SMS on Vonage), every part's id in order, the first being
    ``provider_message_id``; the message counts as delivered once each part is.

    ``sender``: on success, the number the driver sent from (our business number in E.164,
    without ``whatsapp:``; an alphanumeric sender id as it is), or None when it cannot
    tell. A message queued without a ``from`` takes its conversation from it."""

    provider_message_id: str | None = None
    response: Mapping[str, Any] | None = None
    error: DriverError | None = None
    parts: tuple[str, ...] = ()
    sender: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.provider_message_id is not None


class Driver(Protocol):
    """A provider behind one interface. Implementations live in ``adapters/providers``."""

    @property
    def name(self) -> str: ...

    def unavailable_reason(self, channel: Channel) -> str | None:
        """Why this driver cannot serve ``channel`` now (a missing setting), or None."""

    def validate(self, message: OutboundMessage) -> None:
        """Refuse, before anything is recorded, what this driver could never send (a
        template it has no mapping for) with an ``InvalidRequest``."""

    def send(self, message: OutboundMessage) -> DriverResult:
        """Make one attempt. Provider refusals are results, not exceptions."""


class PayloadStore(Protocol):
    """Where message content waits for its retries when ``CONVERSA_STORE_BODY`` is false:
    outside the event store, and deleted as soon as the message has an outcome."""

    def put(self, message_id: UUID, content: Content, expires_at: datetime) -> None: ...

    def get(self, message_id: UUID) -> Content | None: ...

    def delete(self, message_id: UUID) -> None: ...

    def purge_expired(self, now: datetime) -> int:
        """Delete what outlived its retry window; return how many."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    subscriber: str
    event: dict[str, Any]
    error: str
    attempts: int
    created_at: datetime


class SubscriberStore(Protocol):
    """Where each subscriber's position in the lifecycle feed, and what it could not take,
    are kept durably."""

    def position(self, subscriber: str) -> int: ...

    def save_position(self, subscriber: str, position: int) -> None: ...

    def start_at(self, subscriber: str, position: int) -> int:
        """Give a new subscriber ``position``; one that has a position keeps it. Returns
        the subscriber's position. Safe against another process doing the same."""

    def add_dead_letter(
        self, subscriber: str, event: dict[str, Any], error: str, attempts: int
    ) -> int: ...

    def dead_letters(self, subscriber: str | None = None) -> list[DeadLetter]: ...

    def remove_dead_letter(self, dead_letter_id: int) -> None: ...


class EventSignal(Protocol):
    """Wakes a follower of the event store when new events may have been recorded."""

    def wait(self, timeout: float) -> bool | None:
        """Return when events may have been recorded, or after ``timeout`` seconds: true
        when notified, false when the time ran out, None when the signal cannot tell (a
        poll)."""

    def close(self) -> None: ...


class StopSignal(Protocol):
    """When a loop of the worker must end: ``threading.Event`` is one. The worker hands its
    runners one that is also set when the lock they run under is lost."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Lock(Protocol):
    """What :meth:`StorageBackend.lock` yields: true when this process took the lock."""

    def __bool__(self) -> bool: ...

    def held(self) -> bool:
        """Whether this process still holds the lock it took. The lock can be lost without
        the process dying (on PostgreSQL, with its connection: an idle timeout, a failover,
        ``pg_terminate_backend``); whoever runs under it asks before each step, and stops
        when the answer is no, since another process may have taken it over."""


class HealthProbe(Protocol):
    """A quick check that the database answers, for the readiness endpoint."""

    def check(self) -> None:
        """Return when the database answers; raise ``DatabaseUnavailable`` when it cannot
        be reached (another ``PersistenceError`` when it answers with an error)."""

    def interrupted(self) -> bool:
        """Without a round trip: whether the database has, unasked, sent something on the
        check's idle connection since the last check. A server shutting down does (it
        ends every session), so the last answer is out of date at once."""

    def close(self) -> None: ...


class StorageBackend(Protocol):
    """The database chosen by ``CONVERSA_DATABASE_URL``, as the application needs it."""

    @property
    def kind(self) -> str: ...

    def application_env(self, *, create_tables: bool) -> dict[str, str]:
        """The eventsourcing environment for :class:`ConversaApp`."""

    def prepare(self) -> None:
        """Create what must exist before the event store's own tables (a schema)."""

    def tables(self) -> set[str]:
        """The tables there are in the store (of the schema, or of the file), without
        creating anything."""

    def messages_view(self, app: ConversaApp) -> MessagesView:
        """The read model, sharing the application's connection pool."""

    def payload_store(self, app: ConversaApp) -> PayloadStore:
        """The short-lived content store, sharing the application's connection pool."""

    def projection_lock(self) -> AbstractContextManager[Lock]:
        """Try to become the one process that runs the projection (see :meth:`lock`)."""

    def lock(self, name: str) -> AbstractContextManager[Lock]:
        """Try to become the one process that does ``name``; yields a :class:`Lock`, true
        when it did. The lock goes with the process: one that dies releases it."""

    def subscriber_store(self, app: ConversaApp) -> SubscriberStore:
        """Subscribers' positions and dead letters, sharing the application's pool."""

    def event_signal(self) -> EventSignal:
        """A wake-up for the projection when events are recorded, from any process."""

    def health_probe(self) -> HealthProbe:
        """A readiness check with a connection of its own (not one of the pool's)."""
