"""Scheduled sends: when a message is first attempted, cancelling one that has not been,
and waking the dispatcher for the next one due.

A message is *scheduled* when its first attempt must wait: its ``send_at`` lies ahead,
or it is ``marketing`` and the recipient is in quiet hours (``CONVERSA_QUIET_HOURS``).
It is recorded ``Queued`` with ``scheduled_at`` and ``next_attempt_at`` both at that
moment and ``attempt_by="dispatcher"``, and answered at once without an attempt. Nothing
else holds it: the dispatchers' due scan (every worker's, over the read model's due
index) claims it when its time comes, with the claim every retry uses
(``Message.claim_attempt``: one ``AttemptStarted`` per version, so one dispatcher), which
is why it survives any restart and goes out once. The drain, which sends asynchronous
messages at once, leaves scheduled ones alone.

So that the time is kept to well within a second without scanning more often, the worker
sleeps until the earliest scheduled attempt (:class:`WakeUps`): what this process
scheduled it hears at once; what other processes did, from the read model, at its next
scan.

Cancelling (``POST /conversa/messages/{id}/cancel``) records ``Cancelled`` while no
attempt has started; the claim and the cancel are both recorded at the message's first
version, so when they race the event store takes exactly one of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.messages import MAX_CONFLICT_RETRIES, load_message
from conversa.app.projection import MessagesView
from conversa.app.writer import Writer
from conversa.domain.errors import ConversaError
from conversa.domain.message import Message
from conversa.domain.phone import PhoneNumber
from conversa.domain.quiet_hours import QuietHours
from conversa.domain.sending import Category
from conversa.domain.status import Status

log = logging.getLogger(__name__)

#: A first attempt due sooner than this is made at once.
AT_ONCE = timedelta(seconds=1)


class AlreadyAttempted(ConversaError):
    """The message cannot be cancelled: an attempt has started (or it was sent
    synchronously, attempted by its own request at once)."""

    code = "already_attempted"

    def __init__(self, message_id: UUID) -> None:
        super().__init__(
            f"message {message_id} cannot be cancelled: an attempt to send it has started"
        )


class Scheduler:
    """Decides when a new message is first attempted."""

    def __init__(self, quiet_hours: QuietHours | None) -> None:
        self.quiet_hours = quiet_hours

    def scheduled_at(
        self,
        category: Category,
        to: PhoneNumber,
        send_at: datetime | None,
        now: datetime,
    ) -> datetime | None:
        """The moment of the first attempt, or None for at once: ``send_at`` when it lies
        ahead (one already past means at once), moved on past the recipient's quiet
        hours for a marketing message. A transactional message is never held back.

        A moment less than a second ahead is at once too: the dispatcher keeps the time
        to within a second anyway, and the request that records a message must have
        finished writing it down (its content, with ``CONVERSA_STORE_BODY=false``)
        before a dispatcher may claim it."""
        start = send_at if send_at is not None and send_at > now else now
        if category is Category.MARKETING and self.quiet_hours is not None:
            start = self.quiet_hours.next_allowed(to.e164, start)
        return start if start - now >= AT_ONCE else None


def cancel_message(app: ConversaApp, writer: Writer, message_id: UUID) -> Message:
    """Cancel a message no attempt has started for; the cancelled message (a second
    cancel finds it cancelled and records nothing). Raises ``MessageNotFound`` and
    :class:`AlreadyAttempted`."""
    for _ in range(MAX_CONFLICT_RETRIES):
        message = load_message(app, message_id)
        if message.status is Status.CANCELLED:
            return message  # cancelled already: nothing more to record
        if not message.cancellable:
            raise AlreadyAttempted(message_id)
        message.cancel()
        try:
            writer.save(message)
        except IntegrityError:
            continue  # a claim, a report or another cancel got there first: look again
        return message
    msg = f"message {message_id} kept changing; gave up after {MAX_CONFLICT_RETRIES} tries"
    raise RuntimeError(msg)


class WakeUps:
    """When the dispatcher should look for due attempts next: at the latest after its
    scan interval, earlier for a scheduled attempt due before then.

    ``expect(moment)`` is told by this process's sends as they schedule; the read model
    (:meth:`MessagesView.next_due`) tells of the others, at each wait."""

    def __init__(self, view: MessagesView, clock: Callable[[], datetime]) -> None:
        self.view = view
        self.clock = clock
        self._lock = threading.Lock()
        self._expected: datetime | None = None
        self._changed = threading.Event()

    def expect(self, moment: datetime) -> None:
        """An attempt is due at ``moment``: a dispatcher waiting past it wakes for it."""
        with self._lock:
            if self._expected is None or moment < self._expected:
                self._expected = moment
                self._changed.set()

    def seconds_until_next(self, interval: float) -> float:
        """How long to wait (at most ``interval``) before the next scan."""
        now = self.clock()
        with self._lock:
            expected = self._expected
            if expected is not None and expected <= now:
                self._expected = expected = None
        try:
            due = self.view.next_due(now)
        except Exception as error:  # an outage: the scan interval, as before schedules
            log.warning("could not read the next due attempt (%s)", type(error).__name__)
            due = None
        moments = [m for m in (expected, due) if m is not None]
        if not moments:
            return interval
        return max(0.0, min(interval, (min(moments) - now).total_seconds()))

    def wait(self, stop: threading.Event, interval: float) -> None:
        """Until the next scan is due, ``stop`` is set, or a nearer attempt is
        expected."""
        self._changed.clear()
        deadline = time.monotonic() + self.seconds_until_next(interval)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._changed.wait(min(left, _SLICE)):
                return


#: How often a wait looks whether the worker is stopping.
_SLICE = 0.25
