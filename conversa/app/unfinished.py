"""Sends that a database outage interrupted half-way, finished by the same process as soon
as the database answers again.

Two things can be left half-way:

- a ``Queued`` whose save failed with an outage: it may have been committed (the answer
  was lost) or not. The request answered 503 without making the attempt. If the message
  turns out to be stored, with this request's nonce and nothing after it, nobody has
  attempted it: it is claimed and attempted now, rather than when its lease runs out.
- the outcome of an attempt that the provider answered but the database would not take:
  it is recorded now, so that the message is not attempted (sent) a second time.

This is memory, not a queue: a process that dies with entries here leaves them to the
dispatchers' lease-based recovery, as a crash during a provider call does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from conversa.app.consent import conditions_of, refuse_for_consent
from conversa.app.messages import MessageNotFound, load_message
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.ports import DriverResult
from conversa.domain.content import Content
from conversa.domain.status import Status

if TYPE_CHECKING:
    from conversa.app.dispatch import Dispatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _UnconfirmedQueued:
    message_id: UUID
    nonce: str
    content: Content


@dataclass(frozen=True, slots=True)
class _UnrecordedOutcome:
    message_id: UUID
    number: int
    result: DriverResult
    at: datetime
    driver: str


_Entry = _UnconfirmedQueued | _UnrecordedOutcome


class UnfinishedSends:
    #: Beyond this many, entries are left to the dispatchers' lease-based recovery.
    MAX_ENTRIES = 10_000
    #: How often a thread tries again while the database is away.
    RETRY_INTERVAL = 1.0

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._entries: dict[UUID, _Entry] = {}
        self._lock = threading.Lock()
        self._finishing = threading.Lock()  # one entry finished at a time, by one thread
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def queued_unconfirmed(self, message_id: UUID, nonce: str, content: Content) -> None:
        self._add(_UnconfirmedQueued(message_id, nonce, content))

    def outcome_unrecorded(
        self, message_id: UUID, number: int, result: DriverResult, at: datetime, driver: str
    ) -> None:
        self._add(_UnrecordedOutcome(message_id, number, result, at, driver))

    def pending(self) -> int:
        with self._lock:
            return len(self._entries)

    def finish(self, message_id: UUID) -> None:
        """Finish ``message_id`` now if it is unfinished (a replay of its key wants its
        outcome). Raises the outage error if the database is still away."""
        with self._finishing:
            with self._lock:
                entry = self._entries.get(message_id)
            if entry is not None:
                self._finish(entry)

    def close(self) -> None:
        """Stop trying; say which messages are left to the lease-based recovery."""
        self._closed.set()
        thread = self._thread
        if thread is not None:
            thread.join(5)
        with self._lock:
            left = list(self._entries)
        if left:
            log.error(
                "%d sends interrupted by a database outage are left unfinished; the "
                "dispatchers recover them once their lease runs out: %s",
                len(left),
                ", ".join(str(message_id) for message_id in left[:20]),
            )

    def _add(self, entry: _Entry) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                log.error("too many unfinished sends; message_id=%s waits for its lease", entry)
                return
            self._entries[entry.message_id] = entry
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="conversa-unfinished-sends", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self.RETRY_INTERVAL):
            with self._lock:
                entries = list(self._entries.values())
                if not entries:
                    self._thread = None
                    return
            for entry in entries:
                try:
                    with self._finishing:
                        self._finish(entry)
                except DATABASE_OUTAGE:
                    break  # still away: try again in a while
                except Exception:
                    log.exception("could not finish message_id=%s; left to its lease", entry)
                    self._forget(entry)

    def _finish(self, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(entry.message_id) is not entry:
                return  # finished meanwhile
        dispatcher = self._dispatcher
        if isinstance(entry, _UnrecordedOutcome):
            dispatcher.record_outcome(
                entry.message_id, entry.number, entry.result, entry.at, entry.driver
            )
            log.info("recorded the outcome of message_id=%s after an outage", entry.message_id)
        else:
            self._take_over(entry)
        self._forget(entry)

    def _take_over(self, entry: _UnconfirmedQueued) -> None:
        dispatcher = self._dispatcher
        try:
            message = load_message(dispatcher.app, entry.message_id)
        except MessageNotFound:
            return  # never committed: the 503 its request answered was the whole story
        now = dispatcher.clock()
        # Consent again, at the moment of the attempt (an outage may have lasted long).
        decision = dispatcher.consent_decision(message) if dispatcher.consent_decision else None
        if decision is not None and decision.blocked:
            if (
                message.nonce == entry.nonce
                and message.version == message.recorded_version
                and message.status is Status.QUEUED
            ):
                refuse_for_consent(message)
                with contextlib.suppress(IntegrityError):
                    dispatcher.writer.save(message, unchanged=conditions_of(decision))
            self._forget(entry)
            return
        if not message.take_over_first_attempt(entry.nonce, now + dispatcher.lease):
            return  # another request recorded it, or someone acted on it already
        try:
            dispatcher.writer.save(message, unchanged=conditions_of(decision))
        except IntegrityError:
            return  # a dispatcher (or a report) got there first, or the consent changed
        log.info("attempting message_id=%s, recorded before an outage", entry.message_id)
        self._forget(entry)  # the attempt records its own outcome, or registers it again
        dispatcher.attempt(message, entry.content)

    def _forget(self, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(entry.message_id) is entry:
                del self._entries[entry.message_id]
