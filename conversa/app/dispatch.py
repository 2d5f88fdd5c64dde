"""Attempts: handing a message to its driver and recording what came of it.

The first attempt runs inside ``send()``; retries and recoveries run in the dispatcher of
``conversa worker`` (or of a server). Every attempt after the first is claimed by saving an
``AttemptStarted`` event: two dispatchers that read the same version of a message cannot
both save it, so only one of them calls the provider.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.consent import Decision, conditions_of, refuse_for_consent
from conversa.app.failover import choose_driver, planned_driver, reroutes
from conversa.app.messages import load_message, update_message
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.pacing import Pacer
from conversa.app.ports import (
    Driver,
    DriverError,
    DriverResult,
    OutboundMessage,
    PayloadStore,
    StopSignal,
)
from conversa.app.projection import MessagesView
from conversa.app.reporting import link_sent
from conversa.app.retry import RetryPolicy
from conversa.app.telemetry import (
    ACCEPTED,
    DRIVER_ERROR,
    PERMANENT_ERROR,
    TRANSIENT_ERROR,
    NoTelemetry,
    Telemetry,
)
from conversa.app.unfinished import UnfinishedSends
from conversa.app.writer import Writer
from conversa.domain.channel import Channel
from conversa.domain.content import Content
from conversa.domain.message import ATTEMPT_BY_DISPATCHER, Message
from conversa.domain.status import Status

log = logging.getLogger(__name__)

DUE_BATCH = 100
#: A message whose dispatch raised is left alone this long, doubling up to the maximum.
BROKEN_BACKOFF = timedelta(seconds=5)
BROKEN_BACKOFF_MAX = timedelta(minutes=10)
#: How often the due scan looks whether a drain runs.
DRAIN_CHECK = 2.0


class Dispatcher:
    def __init__(
        self,
        *,
        app: ConversaApp,
        writer: Writer,
        view: MessagesView,
        drivers: Mapping[Channel, Driver],
        payloads: PayloadStore,
        policy: RetryPolicy,
        lease: timedelta,
        clock: Callable[[], datetime],
        telemetry: Telemetry | None = None,
        pacers: Mapping[str, Pacer] | None = None,
    ) -> None:
        self.app = app
        #: Each driver's pace (CONVERSA_<DRIVER>_MAX_PER_SECOND), shared with the drain.
        self.pacers: Mapping[str, Pacer] = pacers or {}
        self.writer = writer
        self.view = view
        self.drivers = drivers
        self.payloads = payloads
        self.policy = policy
        self.lease = lease
        self.clock = clock
        #: Messages whose dispatch raised: how often, and when to try them again.
        self._broken: dict[UUID, tuple[int, datetime]] = {}
        self.telemetry = telemetry or NoTelemetry()
        self.unfinished = UnfinishedSends(self)
        #: Whether a drain runs (in any process); wired by the service. None: assume not.
        self.drain_runs: Callable[[], bool] | None = None
        self._drain_seen: tuple[float, bool] = (float("-inf"), False)
        self._drains: dict[UUID, datetime] = {}
        #: Whether a message may be sent as its recipient's consent stands (None: the
        #: check is overridden); wired by the service. None: no check.
        self.consent_decision: Callable[[Message], Decision | None] | None = None
        #: The same for many messages at once (their recipients read in bulk).
        self.consent_decisions: Callable[[list[Message]], list[Decision | None]] | None = None
        #: The consent change a provider's error on a message makes (the recipient to
        #: save with the failure); wired by the service.
        self.provider_signal: Callable[[Message, str | None], list[Aggregate]] | None = None

    def attempt(self, message: Message, content: Content) -> Message:
        """Make the attempt ``message`` is claimed for, and record its outcome.

        When the database cannot take the outcome (an outage), the outcome is kept in
        memory and recorded as soon as it answers again (:class:`UnfinishedSends`), and the
        message is returned with the outcome applied but not yet stored.
        """
        number = message.attempts + 1
        outbound = OutboundMessage(
            message.id, message.channel, message.to, message.sender, content, message.quote
        )
        # With a failover list, the member of this attempt; other than the one the last
        # attempt failed on, when another is healthy.
        driver = choose_driver(self.drivers[message.channel], outbound, message.last_driver)
        reason = driver.unavailable_reason(message.channel)
        if reason is not None:
            log.warning(
                "driver_unavailable message_id=%s driver=%s: %s", message.id, driver.name, reason
            )
            result = DriverResult(error=DriverError("driver_unavailable", reason))
        else:
            result = self._call(driver, outbound)
        now = self.clock()
        version = message.version
        try:
            return self.record_outcome(
                message.id, number, result, now, driver.name, current=message
            )
        except DATABASE_OUTAGE as error:
            log.warning(
                "could not record the outcome of message_id=%s (%s); recording it when the "
                "database is back",
                message.id,
                type(error).__name__,
            )
            self.unfinished.outcome_unrecorded(message.id, number, result, now, driver.name)
            if message.version == version:  # the outcome was not applied to it before the outage
                self._apply(message, result, now, driver.name, link=False)
            return message

    def record_outcome(
        self,
        message_id: UUID,
        number: int,
        result: DriverResult,
        now: datetime,
        driver: str,
        *,
        current: Message | None = None,
    ) -> Message:
        """Record what attempt ``number`` of a message came to, unless it is recorded
        already (its commit went through, but the answer was lost in an outage).

        ``current``: the message as this process saved it last (its claim, or its
        ``Queued``): tried first without reading it again, and its provider-id index taken
        to be new (after a conflict, both are read from the store)."""

        def command(message: Message) -> list[Aggregate]:
            if message.attempts >= number:
                return []
            return self._apply(message, result, now, driver, new_index=message is current)

        recorded = update_message(self.app, self.writer, message_id, command, current=current)
        if recorded.status is not Status.QUEUED and recorded.content is None:
            # The content waited in the payload store; not needed now. If the database
            # is gone again, the purge of expired payloads deletes it later.
            with contextlib.suppress(*DATABASE_OUTAGE):
                self.payloads.delete(message_id)
        return recorded

    def _call(self, driver: Driver, outbound: OutboundMessage) -> DriverResult:
        """Hand ``outbound`` to ``driver``, timed for the provider-call metrics."""
        self.telemetry.provider_call_started(driver.name)
        began = time.perf_counter()
        outcome = DRIVER_ERROR
        try:
            result = driver.send(outbound)
            outcome = _outcome(result)
        except Exception as error:
            # A driver must report refusals as results; an exception is a bug in it. The
            # message is failed rather than left queued, and the log says where to look.
            log.exception("driver %s raised on message_id=%s", driver.name, outbound.message_id)
            result = DriverResult(
                error=DriverError(
                    "driver_error", f"the {driver.name} driver failed: {type(error).__name__}"
                )
            )
        finally:
            seconds = time.perf_counter() - began
            self.telemetry.provider_call_finished(driver.name, outcome, seconds)
        return result

    def _apply(
        self,
        message: Message,
        result: DriverResult,
        now: datetime,
        driver: str,
        *,
        link: bool = True,
        new_index: bool = False,
    ) -> list[Aggregate]:
        """Record the outcome on ``message``; return the other aggregates to save with it
        (none without ``link``: the provider-id index is read from the database, unless
        ``new_index`` says to create it without looking: a conflict tells otherwise)."""
        if message.status is not Status.QUEUED and not result.ok:
            return []  # a report got there first; what the provider said stands
        if result.ok and result.provider_message_id is not None:
            message.record_accepted(
                result.provider_message_id,
                result.response,
                parts=result.parts,
                driver=driver,
                sender=result.sender,
            )
            index = link_sent(self.app, message, driver, assume_new=new_index) if link else None
            return [index] if index is not None else []
        error = result.error or DriverError(
            "driver_error", "the driver returned neither a message id nor an error"
        )
        if error.code == "driver_unavailable":
            message.record_attempt_failed(error.code, error.message, source="driver_unavailable")
            return []
        attempt = message.attempts + 1
        # Another provider of the channel's failover list can take it now: no backoff.
        reroute = reroutes(self.drivers.get(message.channel), driver, error, message.channel)
        if (error.transient or reroute) and self.policy.allows_retry_after(attempt):
            next_at = now if reroute else now + self.policy.delay(attempt)
            log.info(
                "retrying message_id=%s after attempt %d (%s) at %s",
                message.id,
                attempt,
                error.code,
                next_at.isoformat(),
            )
            message.record_retry(error.code, error.message, next_at, driver=driver)
            self.telemetry.retry_scheduled(driver)
            return []
        if error.transient:
            message.record_attempt_failed(
                error.code, f"{error.message} (gave up after {attempt} attempts)", driver=driver
            )
        else:
            message.record_attempt_failed(error.code, error.message, driver=driver)
            if self.provider_signal is not None:  # Twilio 21610, Meta 131050: an opt-out
                return self.provider_signal(message, error.code)
        return []

    def dispatch_due(self, limit: int = DUE_BATCH, stop: StopSignal | None = None) -> int:
        """Make every attempt that is due (retries, and sends a crash left unfinished);
        return how many attempts this process made.

        ``stop`` is looked at before each message: a shutdown waits for the attempt in
        flight to record its outcome, not for the rest of the batch. A message whose
        dispatch raises (a bug, corrupt data) is logged and left alone for a while; the
        others go on. A database outage ends the batch.
        """
        now = self.clock()
        # Forget the ones no longer tried (no longer due: finished by another process).
        self._broken = {
            i: entry for i, entry in self._broken.items() if entry[1] > now - BROKEN_BACKOFF_MAX
        }
        resting = {i for i, (_failures, until) in self._broken.items() if until > now}
        # Queued messages a running drain will claim in its turn (see dispatch()).
        self._drains = {i: until for i, until in self._drains.items() if until > now}
        resting |= set(self._drains)
        made = 0
        for message_id in self.view.due(now, limit + len(resting)):
            if stop is not None and stop.is_set():
                break
            if message_id in resting:
                continue
            if not self._paced(message_id, stop):
                break
            try:
                if self.dispatch(message_id):
                    made += 1
            except DATABASE_OUTAGE:
                raise
            except Exception:
                self._rest(message_id, now)
            else:
                self._broken.pop(message_id, None)
        return made

    def _paced(self, message_id: UUID, stop: StopSignal | None) -> bool:
        """Wait for the pace of the message's driver; false when stopped meanwhile."""
        if not self.pacers:
            return True
        row = self.view.get(message_id)
        pacer = self.pacers.get(row.driver) if row is not None else None
        if pacer is None:
            return True
        while not pacer.take(1):
            if stop is None:
                time.sleep(pacer.delay())
            elif stop.wait(pacer.delay()):
                return False
        return True

    def _rest(self, message_id: UUID, now: datetime) -> None:
        failures = self._broken.get(message_id, (0, now))[0] + 1
        wait = min(BROKEN_BACKOFF * 2 ** (failures - 1), BROKEN_BACKOFF_MAX)
        self._broken[message_id] = (failures, now + wait)
        log.exception(
            "dispatching message_id=%s failed (%d time(s) in a row); going on with the others, "
            "trying it again in %d s",
            message_id,
            failures,
            wait.total_seconds(),
        )

    def dispatch(self, message_id: UUID) -> bool:
        """Claim and make the next attempt of one message, if it is due and nobody else
        claimed it first."""
        now = self.clock()
        message = load_message(self.app, message_id)
        if (
            message.attempt_by == ATTEMPT_BY_DISPATCHER
            and message.version == 1
            and message.scheduled_at is None  # the drain leaves scheduled ones to this scan
            and self._drain_runs()
        ):
            # Queued for the drain, which is behind by more than the lease (a large
            # backlog) but running: leave it to the drain, whose claims would otherwise
            # meet this scan's (each conflict costing it a transaction per message).
            self._drains[message_id] = now + self.lease
            return False
        planned = planned_driver(
            self.drivers[message.channel], message.channel, message.last_driver
        )
        # Consent at the moment of the attempt: an opt-out since the message was queued
        # wins (the claim holds only while the recipient is as read).
        decision = self.consent_decision(message) if self.consent_decision else None
        if decision is not None and decision.blocked and message.is_due(now):
            refuse_for_consent(message)
            with contextlib.suppress(IntegrityError):
                self.writer.save(message, unchanged=conditions_of(decision))
            return False
        if not message.claim_attempt(now, now + self.lease, planned):
            return False  # the read model was behind: already sent, failed or claimed
        try:
            self.writer.save(message, unchanged=conditions_of(decision))
        except IntegrityError:
            return False  # another dispatcher (or a report) changed it first, or the
            # recipient's consent (it is decided again next time)
        log.info("claimed attempt %d of message_id=%s", message.attempts + 1, message.id)
        content = message.content or self.payloads.get(message.id)
        if content is None:
            update_message(self.app, self.writer, message.id, _payload_expired)
            return False
        self.attempt(message, content)
        return True

    def _drain_runs(self) -> bool:
        """Whether a drain runs, asked at most every DRAIN_CHECK seconds (a lock probe)."""
        if self.drain_runs is None:
            return False
        checked, answer = self._drain_seen
        if time.monotonic() - checked >= DRAIN_CHECK:
            answer = self.drain_runs()
            self._drain_seen = (time.monotonic(), answer)
        return answer

    def purge_expired_payloads(self) -> int:
        return self.payloads.purge_expired(self.clock())


def _outcome(result: DriverResult) -> str:
    if result.ok:
        return ACCEPTED
    if result.error is not None and result.error.transient:
        return TRANSIENT_ERROR
    return PERMANENT_ERROR


def _payload_expired(message: Message) -> None:
    message.record_attempt_failed(
        "payload_expired", "the content of this message was not stored and its retry window passed"
    )
