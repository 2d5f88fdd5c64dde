"""The Message aggregate: one outbound message and everything that happened to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from conversa.domain.channel import Channel
from conversa.domain.content import Content
from conversa.domain.phone import PhoneNumber
from conversa.domain.sending import Category
from conversa.domain.status import Status

IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/idempotency")
#: Who makes a message's first attempt (``Queued.attempt_by``).
ATTEMPT_BY_REQUEST = "request"
ATTEMPT_BY_DISPATCHER = "dispatcher"


def message_id_for(scope: str, idempotency_key: str | None) -> UUID:
    """A fresh id, or the one id a given idempotency key always maps to within its scope.

    The event store refuses a second ``Queued`` for the same id, which makes an
    idempotent send atomic and permanent without any cache.
    """
    if idempotency_key is None:
        return uuid4()
    return uuid5(IDEMPOTENCY_NAMESPACE, f"{scope}\x00{idempotency_key}")


class Message(Aggregate):
    # Enum-valued fields are stored as their string values (the JSON transcoder writes
    # str subclasses as plain strings) and turned back into enums by the mutators.
    class Queued(Aggregate.Created):
        """Version 2 added ``nonce``: a value unique to the request that recorded the
        message, so that this request can tell its own write, whose answer it did not get,
        from another request's (an idempotent replay).

        Version 3 added ``attempt_by``: who makes the first attempt. ``"request"``: the
        request that recorded the message, at once (a synchronous send); ``"dispatcher"``:
        the worker's dispatcher (an asynchronous or batch send), which follows the store
        for these and claims each before calling the provider.

        Version 4 added ``reply_to``: the inbound message this one answers, and ``quote``:
        the provider's id of that message when the driver quotes it (Meta's
        ``context.message_id``).

        Version 5 added ``category`` (``transactional`` or ``marketing``),
        ``consent_override`` (sent with ``"consent": "ignore"``) and ``scheduled_at`` (not
        attempted before then: a ``send_at``, or quiet hours)."""

        class_version = 5

        channel: str
        to: PhoneNumber
        sender: str | None
        content: Content | None
        driver: str
        meta: dict[str, Any]
        idempotency_key: str | None
        fingerprint: str
        next_attempt_at: datetime | None
        nonce: str | None
        attempt_by: str = ATTEMPT_BY_REQUEST
        reply_to: UUID | None = None
        quote: str | None = None
        category: str = "transactional"
        consent_override: bool = False
        scheduled_at: datetime | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["nonce"] = None  # recorded before requests were told apart

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["attempt_by"] = ATTEMPT_BY_REQUEST  # every send was synchronous then

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["reply_to"] = None  # recorded before replies
            state["quote"] = None

        @staticmethod
        def upcast_v4_v5(state: dict[str, Any]) -> None:
            state["category"] = "transactional"  # recorded before categories and schedules
            state["consent_override"] = False
            state["scheduled_at"] = None

    class AttemptStarted(Aggregate.Event):
        """A dispatcher claimed the next attempt; it may call the provider until the lease
        ends. Two dispatchers cannot both record it for the same version. Version 2 added
        ``driver``: the one chosen for the attempt when it was claimed."""

        attempt: int
        lease_until: datetime
        driver: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["driver"] = None  # recorded before events named their driver

    class Retried(Aggregate.Event):
        """Version 2 added ``driver``: the one whose attempt failed."""

        attempt: int
        code: str
        message: str
        next_attempt_at: datetime
        driver: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["driver"] = None  # recorded before events named their driver

    class Sent(Aggregate.Event):
        """Version 2 added ``driver``: the one that made the attempt (None for a ``sent``
        that a provider's report recorded first).

        Version 3 added ``sender``: the number the driver sent from (our business number,
        E.164, without ``whatsapp:``), when it knows it; None on a provider's report. A
        message queued without a ``from`` gets its business number, and so its
        conversation, from here."""

        provider_message_id: str
        response: dict[str, Any] | None
        source: str
        driver: str | None
        sender: str | None = None

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["driver"] = None  # recorded before events named their driver

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["sender"] = None  # recorded before drivers said which number they used

    class PartsAccepted(Aggregate.Event):
        """The provider split the message into these parts, each with its own id (the
        first is the message's provider id); it is delivered once each part is."""

        parts: list[str]

    class PartDelivered(Aggregate.Event):
        """One part of a message split into several was delivered; the last one's report
        records ``Delivered`` instead."""

        part: str

    class FallbackRequested(Aggregate.Event):
        """If this WhatsApp message fails for a reason about the recipient, or has no
        ``delivered`` by ``due_at``, its content goes out once as a message on ``channel``.
        ``text``: a template's SMS text with its variables filled in (None for a body,
        which goes as it is)."""

        channel: str
        due_at: datetime
        text: str | None

    class FellBack(Aggregate.Event):
        """The content went out again as the message ``fallback_message_id``."""

        fallback_message_id: UUID
        reason: str

    class FallbackOf(Aggregate.Event):
        """This message is the fallback of the message ``original_id``."""

        original_id: UUID

    class Delivered(Aggregate.Event):
        source: str

    class Read(Aggregate.Event):
        source: str

    class Failed(Aggregate.Event):
        """Version 2 added ``driver``: the one whose attempt failed (None when a report or
        Conversa itself failed the message)."""

        code: str
        message: str
        permanent: bool
        status: str
        source: str
        driver: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["driver"] = None  # recorded before events named their driver

    class Cancelled(Aggregate.Event):
        """The message will not be sent: cancelled before any attempt started (a
        scheduled send, or one queued for the dispatcher and not claimed yet)."""

    @event(Queued)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: ARG002 - taken by the library as the new aggregate's id
        channel: str,
        to: PhoneNumber,
        sender: str | None,
        content: Content | None,
        driver: str,
        meta: dict[str, Any],
        idempotency_key: str | None,
        fingerprint: str,
        next_attempt_at: datetime | None,
        nonce: str | None,
        attempt_by: str,
        reply_to: UUID | None = None,
        quote: str | None = None,
        category: str = "transactional",
        consent_override: bool = False,
        scheduled_at: datetime | None = None,
    ) -> None:
        self.channel = Channel(channel)
        self.category = Category(category)
        #: Sent with ``"consent": "ignore"``: the consent check is skipped.
        self.consent_override = consent_override
        #: Not attempted before this moment (``send_at``, or quiet hours); None: at once.
        self.scheduled_at = scheduled_at
        self.attempt_by = attempt_by
        #: The inbound message this one answers, and its provider id to quote.
        self.reply_to = reply_to
        self.quote = quote
        self.to = to
        self.sender = sender
        self.content = content
        self.driver = driver
        self.meta = meta
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.nonce = nonce
        self.status = Status.QUEUED
        self.provider_message_id: str | None = None
        self.provider_response: dict[str, Any] | None = None
        self.attempts = 0
        self.error: dict[str, str] | None = None
        # A message the provider split: its parts' ids (empty when it was not split or is
        # not sent yet), and those reported delivered so far.
        self.parts: tuple[str, ...] = ()
        self.delivered_parts: frozenset[str] = frozenset()
        self.accepted = False  # the driver's own Sent is recorded
        #: The driver of the latest attempt with an outcome (a failover list's member).
        self.last_driver: str | None = None
        # A fallback asked for (channel, due, text), the message it became, or the message
        # this one is the fallback of.
        self.fallback: tuple[Channel, datetime, str | None] | None = None
        self.fallback_message_id: UUID | None = None
        self.fallback_of: UUID | None = None
        #: The version the message had when it was recorded: its Queued, and the fallback
        #: events that a send records with it.
        self.recorded_version = 1
        # When a dispatcher should next try: after a retry's backoff, or when the lease of
        # an attempt in flight runs out (the process making it may have died). None once
        # the message has an outcome.
        self.next_attempt_at = next_attempt_at

    # Commands. Each decides whether anything happened, then records it.

    def record_accepted(
        self,
        provider_message_id: str,
        response: Mapping[str, Any] | None,
        *,
        parts: tuple[str, ...] = (),
        driver: str | None = None,
        sender: str | None = None,
    ) -> None:
        """The driver handed the message to its provider (one attempt, succeeded).
        ``parts``: the ids of the parts the provider split it into, when it says;
        ``sender``: the number it sent from, when it knows."""
        response_copy = dict(response) if response else None
        self._sent(provider_message_id, response_copy, "driver", driver, sender)
        if len(parts) > 1:
            self._parts_accepted(list(parts))
        if parts and self.delivered_parts.issuperset(parts) and self.status is Status.SENT:
            self._delivered("provider_report")  # every part was reported before the Sent

    def record_attempt_failed(
        self, code: str, message: str, *, source: str = "driver", driver: str | None = None
    ) -> None:
        """An attempt ended in a permanent error: the message will never be sent."""
        self._failed(code, message, True, Status.FAILED.value, source, driver)

    def record_retry(
        self, code: str, message: str, next_attempt_at: datetime, *, driver: str | None = None
    ) -> None:
        """An attempt ended in a transient error; try again at ``next_attempt_at``."""
        self._retried(self.attempts + 1, code, message, next_attempt_at, driver)

    def request_fallback(self, channel: Channel, due_at: datetime, text: str | None) -> None:
        self._fallback_requested(channel.value, due_at, text)

    def record_fallback(self, fallback_message_id: UUID, reason: str) -> bool:
        """The content went out again as ``fallback_message_id``; False when a fallback is
        recorded already (or none was asked for)."""
        if self.fallback is None or self.fallback_message_id is not None:
            return False
        self._fell_back(fallback_message_id, reason)
        return True

    def mark_fallback_of(self, original_id: UUID) -> None:
        self._fallback_of(original_id)

    @property
    def cancellable(self) -> bool:
        """Whether no attempt has started, nor will without a dispatcher's claim: the
        message is still as it was recorded, and its first attempt is a dispatcher's (a
        synchronous send's request makes its own at once, without a claim)."""
        return (
            self.status is Status.QUEUED
            and self.version == self.recorded_version
            and (self.attempt_by == ATTEMPT_BY_DISPATCHER or self.scheduled_at is not None)
        )

    def cancel(self) -> bool:
        """Cancel the message if :attr:`cancellable`; False when it is cancelled
        already. Saving it is what settles a race with a claim: both are recorded at
        the same version, and the event store takes only the first."""
        if self.status is Status.CANCELLED:
            return False
        if not self.cancellable:
            raise ValueError(f"message {self.id} has been attempted: it cannot be cancelled")
        self._cancelled()
        return True

    def is_due(self, now: datetime) -> bool:
        """Whether a dispatcher should make the next attempt now."""
        return (
            self.status is Status.QUEUED
            and self.next_attempt_at is not None
            and self.next_attempt_at <= now
        )

    def claim_attempt(
        self, now: datetime, lease_until: datetime, driver: str | None = None
    ) -> bool:
        """Claim the next attempt if it is due. Saving the claim is what makes it exclusive:
        a concurrent claim on the same version fails in the event store."""
        if not self.is_due(now):
            return False
        self._attempt_started(self.attempts + 1, lease_until, driver)
        return True

    def take_over_first_attempt(
        self, nonce: str, lease_until: datetime, driver: str | None = None
    ) -> bool:
        """Claim the first attempt of a message whose recording request gave up before
        making it (an outage hid whether ``Queued`` was committed). Only that request,
        knowing its ``nonce``, may, and only while nothing else happened to the message:
        the first attempt is otherwise made without a claim, by that request alone."""
        if self.nonce is None or self.nonce != nonce or self.version != self.recorded_version:
            return False
        if self.status is not Status.QUEUED or self.scheduled_at is not None:
            return False  # a scheduled one waits for the due scan, whoever recorded it
        self._attempt_started(self.attempts + 1, lease_until, driver)
        return True

    def claim_queued(self, lease_until: datetime, driver: str | None = None) -> bool:
        """Claim the first attempt of a message queued for a dispatcher (an asynchronous or
        batch send), at once rather than when its recovery time comes. Only while nothing
        else happened to it: a concurrent claim of the same version fails in the store."""
        if self.attempt_by != ATTEMPT_BY_DISPATCHER or self.version != self.recorded_version:
            return False
        if self.scheduled_at is not None:
            return False  # claimed by the due scan, once its time comes (claim_attempt)
        if self.status is not Status.QUEUED:
            return False
        self._attempt_started(self.attempts + 1, lease_until, driver)
        return True

    def record_report(
        self,
        status: Status,
        *,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        source: str = "provider_report",
        part: str | None = None,
    ) -> bool:
        """Apply a provider's status report; record it only when it moves the status forward.

        Returns whether anything was recorded. Reports may come in any order, be repeated,
        or arrive before the driver's own acceptance is recorded: the status is the join of
        all of them, so none of that changes the outcome.
        """
        if self.status.merge(status) == self.status:
            return False
        if status is Status.DELIVERED and part is not None and not self._last_part(part):
            if part in self.delivered_parts:
                return False
            self._part_delivered(part)
            return True
        if status is Status.SENT:
            self._sent(
                provider_message_id or self.provider_message_id or "", None, source, None, None
            )
        elif status is Status.DELIVERED:
            self._delivered(source)
        elif status is Status.READ:
            self._read(source)
        elif status.is_final:
            self._failed(
                error_code or status.value,
                error_message or f"the provider reported the message {status.value}",
                True,
                status.value,
                source,
                None,
            )
        else:
            return False
        return True

    def _last_part(self, part: str) -> bool:
        """Whether a delivered report for ``part`` makes the whole message delivered."""
        if self.parts:
            return part not in self.parts or self.delivered_parts.union({part}).issuperset(
                self.parts
            )
        # Not split, as far as the driver's answer says; or no answer yet (a report can
        # come first), in which case the Sent's parts settle it.
        return self.accepted

    # Mutators: run when an event is recorded and again on every replay, so they only
    # assign what the event says.

    @event(Sent)
    def _sent(
        self,
        provider_message_id: str,
        response: dict[str, Any] | None,
        source: str,
        driver: str | None,
        sender: str | None = None,
    ) -> None:
        if driver is not None:
            self.driver = driver
            self.last_driver = driver
        if sender is not None and getattr(self, "sent_from", None) is None:
            #: The number the driver sent from (the first one told): the business number
            #: of a message queued without a ``from``. Absent until then: read it with
            #: ``getattr(message, "sent_from", None)``.
            self.sent_from: str | None = sender
        if provider_message_id:
            self.provider_message_id = provider_message_id
        if response is not None:
            self.provider_response = response
        if source == "driver":
            self.attempts += 1
            self.next_attempt_at = None
            self.accepted = True
        self.status = self.status.merge(Status.SENT)

    @event(PartsAccepted)
    def _parts_accepted(self, parts: list[str]) -> None:
        self.parts = tuple(parts)

    @event(PartDelivered)
    def _part_delivered(self, part: str) -> None:
        self.delivered_parts = self.delivered_parts.union({part})

    @event(AttemptStarted)
    def _attempt_started(self, attempt: int, lease_until: datetime, driver: str | None) -> None:  # noqa: ARG002
        self.next_attempt_at = lease_until

    @event(Retried)
    def _retried(
        self,
        attempt: int,  # noqa: ARG002
        code: str,
        message: str,
        next_attempt_at: datetime,
        driver: str | None,
    ) -> None:
        if driver is not None:
            self.last_driver = driver
        self.attempts += 1
        self.error = {"code": code, "message": message}
        self.next_attempt_at = next_attempt_at

    @event(FallbackRequested)
    def _fallback_requested(self, channel: str, due_at: datetime, text: str | None) -> None:
        self.fallback = (Channel(channel), due_at, text)
        self.recorded_version += 1  # only ever recorded with the Queued

    @event(FellBack)
    def _fell_back(self, fallback_message_id: UUID, reason: str) -> None:  # noqa: ARG002
        self.fallback_message_id = fallback_message_id

    @event(FallbackOf)
    def _fallback_of(self, original_id: UUID) -> None:
        self.fallback_of = original_id
        self.recorded_version += 1  # only ever recorded with the Queued

    @event(Cancelled)
    def _cancelled(self) -> None:
        self.next_attempt_at = None
        self.status = self.status.merge(Status.CANCELLED)

    @event(Delivered)
    def _delivered(self, source: str) -> None:  # noqa: ARG002 - recorded in the event
        self.status = self.status.merge(Status.DELIVERED)

    @event(Read)
    def _read(self, source: str) -> None:  # noqa: ARG002 - recorded in the event
        self.status = self.status.merge(Status.READ)

    @event(Failed)
    def _failed(
        self,
        code: str,
        message: str,
        permanent: bool,  # noqa: ARG002
        status: str,
        source: str,
        driver: str | None,
    ) -> None:
        if driver is not None:
            self.last_driver = driver
        if source == "driver":
            self.attempts += 1
        self.next_attempt_at = None
        self.error = {"code": code, "message": message}
        self.status = self.status.merge(Status(status))

    @property
    def updated_at(self) -> datetime:
        return self.modified_on
