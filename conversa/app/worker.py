"""The background duties of Conversa, run by ``conversa worker`` or inside ``conversa serve``.

- The projection keeps ``conversa_messages`` up to date. Only one process runs it at a
  time (the backend's projection lock); the others stand by and take over when that
  process goes away.
- Each lifecycle subscriber follows the lifecycle feed, one process at a time per
  subscriber (a lock of its own), so that it sees events in order.
- The dispatcher makes the attempts that are due: retries after transient errors, and
  sends that a crash left unfinished. Every worker dispatches; each attempt is claimed in
  the event store first, so no two workers make the same one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.ports import EventSignal
from conversa.app.service import ConversaService
from conversa.app.subscribers import SubscriberRunner

log = logging.getLogger(__name__)

STANDBY_INTERVAL = 2.0
ERROR_BACKOFF = 2.0
#: How often the dispatcher looks for due attempts when it found none.
DISPATCH_INTERVAL = 0.5
#: How often expired payloads (CONVERSA_STORE_BODY=false) are swept, in dispatch rounds.
PURGE_EVERY = 120


class Worker:
    def __init__(self, service: ConversaService, *, dispatch_interval: float = DISPATCH_INTERVAL):
        self.service = service
        self.dispatch_interval = dispatch_interval

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set. Database outages are waited out, not fatal."""
        helpers = [
            threading.Thread(target=self.run_dispatcher, args=(stop,), name="conversa-dispatcher")
        ]
        for subscription in self.service.subscriptions:
            runner = SubscriberRunner(
                subscription, self.service.feed, self.service.subscriber_store
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
            for helper in helpers:
                helper.join(30)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(stop,), name="conversa-worker", daemon=True
        )
        thread.start()
        return thread

    def run_exclusive(
        self,
        name: str,
        follow: Callable[[threading.Event, EventSignal], None],
        stop: threading.Event,
    ) -> None:
        """Run ``follow`` while this process holds the lock ``name``; stand by while another
        process does. ``follow`` returns when ``stop`` is set."""
        backend = self.service.backend
        standing_by = False
        while not stop.is_set():
            try:
                with backend.lock(name) as acquired:
                    if not acquired:
                        if not standing_by:
                            log.info("another process runs %s; standing by", name)
                            standing_by = True
                        stop.wait(STANDBY_INTERVAL)
                        continue
                    standing_by = False
                    log.info("running %s", name)
                    signal = backend.event_signal()
                    try:
                        follow(stop, signal)
                    finally:
                        signal.close()
            except DATABASE_OUTAGE as error:
                log.warning("%s interrupted (%s); retrying", name, type(error).__name__)
                stop.wait(ERROR_BACKOFF)
            except Exception:
                # A bug or corrupt data (ProjectionOutOfSequence, say): keep the process
                # serving, say so loudly, and try again later rather than die silently.
                log.exception("%s failed; retrying", name)
                stop.wait(ERROR_BACKOFF * 5)

    def run_dispatcher(self, stop: threading.Event) -> None:
        dispatcher = self.service.dispatcher
        rounds = 0
        while not stop.is_set():
            try:
                made = dispatcher.dispatch_due()
                rounds += 1
                if rounds % PURGE_EVERY == 0:
                    dispatcher.purge_expired_payloads()
            except DATABASE_OUTAGE as error:
                log.warning("dispatch interrupted (%s); retrying", type(error).__name__)
                stop.wait(ERROR_BACKOFF)
                continue
            except Exception:
                log.exception("dispatching due attempts failed; retrying")
                stop.wait(ERROR_BACKOFF * 5)
                continue
            if made == 0:
                stop.wait(self.dispatch_interval)
