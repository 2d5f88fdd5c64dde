"""The background duties of Conversa, run by ``conversa worker`` or inside ``conversa serve``.

- The projection keeps ``conversa_messages`` up to date. Only one process runs it at a
  time (the backend's projection lock); the others stand by and take over when that
  process goes away.
- The dispatcher makes the attempts that are due: retries after transient errors, and
  sends that a crash left unfinished. Every worker dispatches; each attempt is claimed in
  the event store first, so no two workers make the same one.
"""

from __future__ import annotations

import logging
import threading

from eventsourcing.persistence import OperationalError

from conversa.app.service import ConversaService

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
        dispatcher = threading.Thread(
            target=self.run_dispatcher, args=(stop,), name="conversa-dispatcher", daemon=True
        )
        dispatcher.start()
        try:
            self.run_projection(stop)
        finally:
            stop.set()
            dispatcher.join(30)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(stop,), name="conversa-worker", daemon=True
        )
        thread.start()
        return thread

    def run_projection(self, stop: threading.Event) -> None:
        backend = self.service.backend
        projector = self.service.projector()
        standing_by = False
        while not stop.is_set():
            try:
                with backend.projection_lock() as acquired:
                    if not acquired:
                        if not standing_by:
                            log.info("another process runs the projection; standing by")
                            standing_by = True
                        stop.wait(STANDBY_INTERVAL)
                        continue
                    standing_by = False
                    log.info("running the message log projection")
                    signal = backend.event_signal()
                    try:
                        projector.run(stop, signal)
                    finally:
                        signal.close()
            except OperationalError as error:
                log.warning("projection interrupted (%s); retrying", type(error).__name__)
                stop.wait(ERROR_BACKOFF)
            except Exception:
                # A bug or corrupt data (ProjectionOutOfSequence, say): keep the process
                # serving, say so loudly, and try again later rather than die silently.
                log.exception("the message log projection failed; retrying")
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
            except OperationalError as error:
                log.warning("dispatch interrupted (%s); retrying", type(error).__name__)
                stop.wait(ERROR_BACKOFF)
                continue
            except Exception:
                log.exception("dispatching due attempts failed; retrying")
                stop.wait(ERROR_BACKOFF * 5)
                continue
            if made == 0:
                stop.wait(self.dispatch_interval)
