"""The dispatcher's drain: sending, promptly, the messages queued for it (asynchronous and
batch sends, ``Queued`` with ``attempt_by="dispatcher"``).

It follows the event store rather than the read model, so a message is claimed within
milliseconds of its commit, whatever the projection's lag: on PostgreSQL it is woken by
the NOTIFY of every insert (LISTEN), on SQLite by the sends of its own process; in both a
slow poll (``CONVERSA_DISPATCH_POLL_SECONDS``) is the safety net.

Each round, for each driver, it claims at most ``CONVERSA_DISPATCH_CONCURRENCY`` messages
(as few as the driver's pacer allows) in one transaction, makes their provider calls
concurrently (so every claimed message is in a call at once, well inside its lease), and
records their outcomes in one transaction (``Writer.save_each``). A claim is an
``AttemptStarted`` saved at version 2: a message another process acted on first is refused
to this one alone. Exactly once, but for a crash in the middle of a provider call: the
claim's lease then runs out and a worker's due scan makes the attempt again.

One process at a time drains (the worker's ``dispatcher`` lock); its position in the
store is kept among the subscribers' positions, saved once everything before it has been
claimed. Another worker stands by, and meanwhile makes the due attempts (retries,
recoveries) as every worker does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from conversa.app.accept import DRAIN_POSITION
from conversa.app.consent import Decision, conditions_of, refuse_for_consent
from conversa.app.dispatch import _payload_expired
from conversa.app.failover import choose_driver, planned_driver
from conversa.app.messages import load_message, update_message
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.pacing import Pacer
from conversa.app.ports import (
    DriverError,
    DriverResult,
    EventSignal,
    OutboundMessage,
    StopSignal,
    SubscriberStore,
)
from conversa.app.provider_calls import WORST_CASE_PROVIDER_CALL
from conversa.app.unchanged import Unchanged
from conversa.domain.content import Content
from conversa.domain.message import ATTEMPT_BY_DISPATCHER, Message
from conversa.domain.status import Status

if TYPE_CHECKING:
    from conversa.app.dispatch import Dispatcher

log = logging.getLogger(__name__)

QUEUED_TOPIC = get_topic(Message.Queued)
#: The lock under which one process at a time drains (see Worker.run_exclusive).
DRAIN_LOCK = "dispatcher"
#: Notifications read from the store at once.
READ_BATCH = 1000
#: Messages read ahead of their claim, at most.
MAX_PENDING = 10_000
#: How long a message waits for its content in the payload store (CONVERSA_STORE_BODY=false:
#: it is written right after the message's commit) before it is left to the due scan.
PAYLOAD_WAIT = 5.0
#: How often a wait looks whether the worker is stopping.
STOP_CHECK = 0.5
#: Messages of one driver claimed in one round, at most (and at least its concurrency).
ROUND_SIZE = 500


@dataclass(slots=True)
class _Pending:
    position: int
    message: Message
    seen: float
    content: Content | None = None


@dataclass(slots=True)
class _Claimed:
    message: Message
    content: Content
    driver: str
    number: int
    #: A call that cannot start by then might outlast the claim's lease: it is not made,
    #: and the message is left to the due scan once the lease has run out.
    call_by: datetime
    result: DriverResult = field(default_factory=DriverResult)
    attempted: bool = False


class Drain:
    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        store: SubscriberStore,
        pacers: Mapping[str, Pacer],
        concurrency: int,
        poll_seconds: float,
        local_wake: threading.Event,
        notified_across_processes: bool,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatcher = dispatcher
        self.store = store
        self.pacers = pacers
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.local_wake = local_wake
        #: True on PostgreSQL: the event signal (LISTEN) hears every process's inserts.
        self.notified_across_processes = notified_across_processes
        self.monotonic = monotonic
        #: While running in this process: the last notification read, and how many
        #: messages are read but not yet claimed or in flight.
        self.read_to: int | None = None
        self.pending_count = 0
        #: Set once this process's worker has tried the drain's lock: ``holds`` says
        #: whether it got it (else another process drains).
        self.tried = threading.Event()
        self.holds = False
        self._pending: dict[str, deque[_Pending]] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._stop_checked = float("-inf")
        self._stop_seen = False
        #: True while a round has messages in hand (claiming, calling, recording).
        self._busy = False

    # The loop

    def run(self, stop: StopSignal, signal: EventSignal) -> None:
        """Drain until ``stop`` is set (the worker runs this under its ``dispatcher`` lock)."""
        app = self.dispatcher.app
        saved = self.store.start_at(DRAIN_POSITION, app.recorder.max_notification_id() or 0)
        self.read_to = saved
        self._pending = {}
        self.pending_count = 0
        self._stop_checked, self._stop_seen = float("-inf"), False
        try:
            while not stop.is_set():
                read = self._read()
                made, waiting = self._round(stop)
                position = self._position()
                if position > saved:
                    self.store.save_position(DRAIN_POSITION, position)
                    saved = position
                if read or made:
                    continue
                if waiting is not None:
                    stop.wait(waiting)
                else:
                    self._wait(signal, stop)
        finally:
            for pool in self._pools.values():
                pool.shutdown(wait=True)
            self._pools = {}
            self.read_to = None
            self.pending_count = 0

    def lock_attempted(self, acquired: bool) -> None:
        self.holds = acquired
        self.tried.set()

    def caught_up(self, head: int) -> bool:
        """Whether this process's drain has claimed and finished every message queued for
        it up to notification ``head`` (false when it does not run here)."""
        read_to = self.read_to
        if read_to is None:
            return False
        if self.pending_count or self._busy:
            return False
        if read_to >= head:
            return True
        return not self.dispatcher.app.recorder.select_notifications(
            start=read_to, limit=1, stop=head, topics=[QUEUED_TOPIC], inclusive_of_start=False
        )

    def _wait(self, signal: EventSignal, stop: StopSignal) -> None:
        """Until woken, stopped, or the poll interval has passed."""
        deadline = self.monotonic() + self.poll_seconds
        while not stop.is_set():
            left = deadline - self.monotonic()
            if left <= 0:
                return
            slice_ = min(left, STOP_CHECK)
            if self.notified_across_processes:
                woken = signal.wait(slice_)
            else:
                woken = self.local_wake.wait(slice_)
            if woken is not False:
                return

    def _read(self) -> int:
        """Read the messages queued after the last one read; return how many."""
        if self.pending_count >= MAX_PENDING or self.read_to is None:
            return 0
        app = self.dispatcher.app
        self.local_wake.clear()  # a wake-up from now on is for what this read misses
        notifications = app.recorder.select_notifications(
            start=self.read_to,
            limit=READ_BATCH,
            topics=[QUEUED_TOPIC],
            inclusive_of_start=False,
        )
        now = self.monotonic()
        found = 0
        for notification in notifications:
            self.read_to = notification.id
            event = app.mapper.to_domain_event(notification)
            if not isinstance(event, Message.Queued) or event.attempt_by != ATTEMPT_BY_DISPATCHER:
                continue  # a synchronous send: its request makes the attempt
            if event.scheduled_at is not None:
                continue  # scheduled: the due scan claims it when its time comes
            message = event.mutate(None)
            assert isinstance(message, Message)
            lane = self._pending.setdefault(message.driver, deque())
            lane.append(_Pending(notification.id, message, now, message.content))
            found += 1
        self.pending_count += found
        return found

    def _position(self) -> int:
        """Where to resume: before the first message not yet claimed."""
        assert self.read_to is not None
        firsts = [lane[0].position for lane in self._pending.values() if lane]
        return min(firsts) - 1 if firsts else self.read_to

    # One round: claim, call, record

    def _round(self, stop: StopSignal) -> tuple[int, float | None]:
        """Claim and attempt what each driver may send now; return how many attempts were
        made, and (when nothing could be) how long until a pacer lets one more go."""
        self._busy = True
        try:
            return self._round_busy(stop)
        finally:
            self._busy = False

    def _round_busy(self, stop: StopSignal) -> tuple[int, float | None]:
        chosen: list[_Pending] = []
        waits: list[float] = []
        for name, lane in self._pending.items():
            if not lane:
                continue
            wanted = min(len(lane), max(self.concurrency, ROUND_SIZE))
            pacer = self.pacers.get(name)
            if pacer is not None:
                wanted = pacer.take(wanted)
                if wanted == 0:
                    waits.append(pacer.delay())
                    continue
            for _ in range(wanted):
                chosen.append(lane.popleft())
        if not chosen or stop.is_set():
            self._put_back(chosen)
            return 0, (min(waits) if waits else None)
        claimed = self._claim(chosen)
        if claimed:
            self._attempt(claimed, stop)
            self._record([entry for entry in claimed if entry.attempted])
        return len(claimed), None

    def _put_back(self, entries: list[_Pending]) -> None:
        for entry in reversed(entries):
            self._pending[entry.message.driver].appendleft(entry)

    def _claim(self, chosen: list[_Pending]) -> list[_Claimed]:
        dispatcher = self.dispatcher
        now = dispatcher.clock()
        lease_until = now + dispatcher.lease
        call_by = lease_until - timedelta(seconds=WORST_CASE_PROVIDER_CALL)
        waiting: list[_Pending] = []
        ready: list[tuple[_Pending, Content | None]] = []
        conditions: list[tuple[Unchanged, ...]] = []
        refused: list[tuple[Message, tuple[Unchanged, ...]]] = []
        # Consent at the moment of the attempt (an opt-out since it was queued wins), the
        # recipients of the round read at once.
        verdicts = self._decide_all([entry.message for entry in chosen])
        for entry, decision in zip(chosen, verdicts, strict=True):
            content = entry.content or dispatcher.payloads.get(entry.message.id)
            if content is None and self.monotonic() - entry.seen < PAYLOAD_WAIT:
                waiting.append(entry)  # written right after the commit: look again
                continue
            message = entry.message
            planned = planned_driver(
                dispatcher.drivers[message.channel], message.channel, message.last_driver
            )
            if decision is not None and decision.blocked:
                if _waiting(message):
                    refuse_for_consent(message)
                    refused.append((message, conditions_of(decision)))
                continue
            if message.claim_queued(lease_until, planned):
                ready.append((entry, content))
                conditions.append(conditions_of(decision))
        self._put_back(waiting)
        self.pending_count -= len(chosen) - len(waiting)
        if refused:
            # A refusal that meets a change (of the message or of the consent) leaves the
            # message queued: the due scan decides again once its lease ends.
            dispatcher.writer.save_each([[m] for m, _ in refused], [c for _, c in refused])
        if not ready:
            return []
        refusals = dispatcher.writer.save_each([[entry.message] for entry, _ in ready], conditions)
        claimed = []
        for (entry, content), refusal in zip(ready, refusals, strict=True):
            message = entry.message
            if refusal is not None:
                # Another process (a due scan, a report) acted on it first, or it was
                # recorded with more than its Queued (a fallback asked for): read it, and
                # claim it if it is still waiting for its first attempt.
                reread = self._claim_stored(message.id, lease_until)
                if reread is None:
                    continue
                message = entry.message = reread
            if content is None:
                # Its content never reached the payload store (CONVERSA_STORE_BODY=false
                # and its request died right after the commit): it cannot be sent.
                log.warning("no content for message_id=%s; failing it", message.id)
                update_message(dispatcher.app, dispatcher.writer, message.id, _payload_expired)
                continue
            driver = dispatcher.drivers[message.channel].name
            claimed.append(_Claimed(message, content, driver, 1, call_by))
        return claimed

    def _claim_stored(self, message_id: UUID, lease_until: datetime) -> Message | None:
        """Claim the stored message on its own, if it is still queued for the drain."""
        dispatcher = self.dispatcher
        message = load_message(dispatcher.app, message_id)
        planned = planned_driver(
            dispatcher.drivers[message.channel], message.channel, message.last_driver
        )
        decision = self._decide(message)
        if decision is not None and decision.blocked:
            if _waiting(message):
                refuse_for_consent(message)
                with contextlib.suppress(IntegrityError):
                    dispatcher.writer.save(message, unchanged=conditions_of(decision))
            return None
        if not message.claim_queued(lease_until, planned):
            return None
        try:
            dispatcher.writer.save(message, unchanged=conditions_of(decision))
        except IntegrityError:
            return None
        return message

    def _decide(self, message: Message) -> Decision | None:
        decide = self.dispatcher.consent_decision
        return None if decide is None else decide(message)

    def _decide_all(self, messages: list[Message]) -> list[Decision | None]:
        decide_many = self.dispatcher.consent_decisions
        if decide_many is None:
            return [self._decide(message) for message in messages]
        return decide_many(messages)

    def _attempt(self, claimed: list[_Claimed], stop: StopSignal) -> None:
        """Make the provider calls, at most ``concurrency`` at once per driver. Once the
        worker is told to stop, the calls not yet started are not made (their messages
        are recovered when the lease runs out): only those in flight are waited for."""
        by_driver: dict[str, list[_Claimed]] = {}
        for entry in claimed:
            by_driver.setdefault(entry.driver, []).append(entry)
        futures: list[Future[None]] = []
        for name, entries in by_driver.items():
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix=f"conversa-send-{name}"
                )
            # As many tasks as calls may run at once, each taking the next message until
            # none is left: a slow call holds up only its own task, and a round of
            # hundreds of quick calls costs a few dozen tasks, not hundreds.
            waiting = deque(entries)
            tasks = min(self.concurrency, len(entries))
            futures.extend(pool.submit(self._call_each, waiting, stop) for _ in range(tasks))
        for future in futures:
            future.result()

    def _call_each(self, waiting: deque[_Claimed], stop: StopSignal) -> None:
        while True:
            try:
                entry = waiting.popleft()  # atomic: the tasks share the deque
            except IndexError:
                return
            self._call(entry, stop)

    def _call(self, entry: _Claimed, stop: StopSignal) -> None:
        dispatcher = self.dispatcher
        message = entry.message
        if self._stopping(stop):
            return
        if dispatcher.clock() > entry.call_by:
            log.warning(
                "message_id=%s waited too long for a provider call; leaving it to the due "
                "scan once its lease runs out",
                message.id,
            )
            return
        entry.attempted = True
        outbound = OutboundMessage(
            message.id, message.channel, message.to, message.sender, entry.content, message.quote
        )
        # With a failover list, the member its breakers allow now: the outcome names it.
        driver = choose_driver(dispatcher.drivers[message.channel], outbound, message.last_driver)
        entry.driver = driver.name
        reason = driver.unavailable_reason(message.channel)
        if reason is not None:
            log.warning(
                "driver_unavailable message_id=%s driver=%s: %s", message.id, driver.name, reason
            )
            entry.result = DriverResult(error=DriverError("driver_unavailable", reason))
            return
        entry.result = dispatcher._call(driver, outbound)

    def _stopping(self, stop: StopSignal) -> bool:
        """``stop.is_set()``, asked at most every STOP_CHECK seconds: asking can be a round
        trip (whether the lock is still held), and every call of a round asks."""
        now = self.monotonic()
        if now - self._stop_checked >= STOP_CHECK:
            self._stop_seen = stop.is_set()
            self._stop_checked = now
        return self._stop_seen

    def _record(self, claimed: list[_Claimed]) -> None:
        """Record the outcomes together; one refused (a report got there first) is
        recorded again on its own, from the stored message."""
        if not claimed:
            return
        dispatcher = self.dispatcher
        now = dispatcher.clock()
        groups: list[list[Aggregate]] = []
        for entry in claimed:
            others = dispatcher._apply(
                entry.message, entry.result, now, entry.driver, new_index=True
            )
            groups.append([entry.message, *others])
        try:
            refusals = dispatcher.writer.save_each(groups)
        except DATABASE_OUTAGE as error:
            log.warning(
                "could not record the outcomes of %d attempts (%s); recording them when the "
                "database is back",
                len(claimed),
                type(error).__name__,
            )
            for entry in claimed:
                dispatcher.unfinished.outcome_unrecorded(
                    entry.message.id, entry.number, entry.result, now, entry.driver
                )
            return
        for entry, refusal in zip(claimed, refusals, strict=True):
            message = entry.message
            if refusal is not None:
                message = dispatcher.record_outcome(
                    message.id, entry.number, entry.result, now, entry.driver
                )
            if message.status is not Status.QUEUED and message.content is None:
                with contextlib.suppress(*DATABASE_OUTAGE):
                    dispatcher.payloads.delete(message.id)


def _waiting(message: Message) -> bool:
    """Whether ``message`` still waits for the drain's first attempt (as claim_queued)."""
    return (
        message.attempt_by == ATTEMPT_BY_DISPATCHER
        and message.version == message.recorded_version
        and message.status is Status.QUEUED
    )
