"""The background duties of Conversa, run by ``conversa worker`` or inside ``conversa serve``.

- The projection keeps ``conversa_messages`` up to date. Only one process runs it at a
  time (the backend's projection lock); the others stand by and take over when that
  process goes away.
- Each lifecycle subscriber follows the lifecycle feed, one process at a time per
  subscriber (a lock of its own), so that it sees events in order.
- The dispatcher makes the attempts that are due: retries after transient errors,
  scheduled sends (``send_at``, quiet hours) when their time comes, and sends that a crash
  left unfinished. Between scans it sleeps until the next scheduled attempt at the latest
  (:mod:`conversa.app.scheduling`). Every worker dispatches; each attempt is claimed in
  the event store first, so no two workers make the same one.
- The drain (:mod:`conversa.app.drain`) sends the messages queued for the dispatcher
  (asynchronous and batch sends) as soon as they are committed: one process at a time
  (the ``dispatcher`` lock), the others stand by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from conversa.app.drain import DRAIN_LOCK
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.ports import EventSignal, Lock, StopSignal
from conversa.app.provider_calls import SHUTDOWN_GRACE_SECONDS
from conversa.app.service import ConversaService
from conversa.app.subscribers import SubscriberRunner

log = logging.getLogger(__name__)

STANDBY_INTERVAL = 2.0
ERROR_BACKOFF = 2.0
#: How often the dispatcher looks for due attempts when it found none.
DISPATCH_INTERVAL = 0.5
#: How often expired payloads (CONVERSA_STORE_BODY=false) are swept and parked status
#: reports expired (CONVERSA_PARKED_REPORT_HOURS), in dispatch rounds.
PURGE_EVERY = 120


class Worker:
    def __init__(
        self,
        service: ConversaService,
        *,
        dispatch_interval: float = DISPATCH_INTERVAL,
        standby_interval: float = STANDBY_INTERVAL,
        shutdown_grace: float = SHUTDOWN_GRACE_SECONDS,
    ):
        self.service = service
        self.dispatch_interval = dispatch_interval
        #: How long run() waits, once stopped, for its duties to reach a safe point (the
        #: dispatcher: the outcome of the attempt in flight recorded).
        self.shutdown_grace = shutdown_grace
        #: How often a process that stands by tries to take a lock.
        self.standby_interval = standby_interval

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set. Database outages are waited out, not fatal."""
        helpers = [
            threading.Thread(target=self.run_dispatcher, args=(stop,), name="conversa-dispatcher"),
            threading.Thread(
                target=self.run_exclusive,
                args=(DRAIN_LOCK, self.service.drain.run, stop),
                kwargs={"on_attempt": self.service.drain.lock_attempted},
                name="conversa-drain",
            ),
        ]
        for subscription in self.service.subscriptions:
            runner = SubscriberRunner(
                subscription,
                self.service.feed,
                self.service.subscriber_store,
                self.service.telemetry,
            )
            helpers.append(
                threading.Thread(
                    target=self.run_exclusive,
                    args=(f"subscriber:{subscription.name}", runner.run, stop),
                    name=f"conversa-subscriber-{subscription.name}",
                )
            )
        for helper in helpers:
            helper.daemon = True
            helper.start()
        try:
            self.run_exclusive("projection", self.service.projector().run, stop)
        finally:
            stop.set()
            deadline = time.monotonic() + self.shutdown_grace
            for helper in helpers:
                helper.join(max(deadline - time.monotonic(), 0.0))
            if late := [helper.name for helper in helpers if helper.is_alive()]:
                log.error(
                    "%s did not stop within %.0f s; stopping without them",
                    ", ".join(late),
                    self.shutdown_grace,
                )

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(stop,), name="conversa-worker", daemon=True
        )
        thread.start()
        return thread

    def run_exclusive(
        self,
        name: str,
        follow: Callable[[StopSignal, EventSignal], None],
        stop: threading.Event,
        *,
        on_attempt: Callable[[bool], None] | None = None,
    ) -> None:
        """Run ``follow`` while this process holds the lock ``name``; stand by while another
        process does. ``follow`` returns when its stop signal is set: when ``stop`` is, or
        when the lock is lost (then this process tries to take it again)."""
        backend = self.service.backend
        standing_by = False
        while not stop.is_set():
            try:
                with backend.lock(name) as lock:
                    if on_attempt is not None:
                        on_attempt(bool(lock))
                    if not lock:
                        if not standing_by:
                            log.info("another process runs %s; standing by", name)
                            standing_by = True
                        stop.wait(self.standby_interval)
                        continue
                    standing_by = False
                    log.info("running %s", name)
                    held = WhileHeld(stop, lock)
                    signal = backend.event_signal()
                    try:
                        follow(held, signal)
                    finally:
                        signal.close()
                if held.lost:
                    log.warning(
                        "lost the lock of %s (its database connection dropped): stopped "
                        "running it; standing by",
                        name,
                    )
                    # Its connection just failed: a standby whose connection did not gets
                    # the first chance to take over.
                    stop.wait(self.standby_interval)
            except DATABASE_OUTAGE as error:
                log.warning("%s interrupted (%s); retrying", name, type(error).__name__)
                stop.wait(ERROR_BACKOFF)
            except Exception:
                # A bug or corrupt data (ProjectionOutOfSequence, say): keep the process
                # serving, say so loudly, and try again later rather than die silently.
                log.exception("%s failed; retrying (`conversa diagnose` says what to do)", name)
                stop.wait(ERROR_BACKOFF * 5)

    def run_dispatcher(self, stop: threading.Event) -> None:
        dispatcher = self.service.dispatcher
        rounds = 0
        while not stop.is_set():
            try:
                made = dispatcher.dispatch_due(stop=stop)
                made += self.service.run_fallbacks()  # WhatsApp-to-SMS fallbacks now due
                rounds += 1
                if rounds % PURGE_EVERY == 0:
                    dispatcher.purge_expired_payloads()
                    self.service.expire_parked_reports()
            except DATABASE_OUTAGE as error:
                log.warning("dispatch interrupted (%s); retrying", type(error).__name__)
                stop.wait(ERROR_BACKOFF)
                continue
            except Exception:
                log.exception("dispatching due attempts failed; retrying")
                stop.wait(ERROR_BACKOFF * 5)
                continue
            if made == 0:
                # At most the scan interval; until the next scheduled attempt, if sooner.
                self.service.wake_ups.wait(stop, self.dispatch_interval)


class WhileHeld:
    """The stop signal of a runner that holds a lock: set when the worker stops, and also
    as soon as the lock is found lost. Runners ask it before each batch and each hand-over,
    so a runner whose lock went with its connection stops before a standby that took the
    lock over could hand the same events over at the same time."""

    #: How often a long wait (a subscriber's backoff) looks at the lock.
    CHECK_INTERVAL = 1.0

    def __init__(self, stop: threading.Event, lock: Lock) -> None:
        self._stop = stop
        self._lock = lock
        self.lost = False

    def is_set(self) -> bool:
        if self._stop.is_set() or self.lost:
            return True
        self.lost = not self._lock.held()
        return self.lost

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = self.CHECK_INTERVAL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, self.CHECK_INTERVAL))
        return True
