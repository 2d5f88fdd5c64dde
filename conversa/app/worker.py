"""The background duties of Conversa, run by ``conversa worker`` or inside ``conversa serve``.

For now there is one: keeping the ``conversa_messages`` read model up to date. Only one
process runs the projection at a time (the backend's projection lock); the others stand
by and take over when that process goes away.
"""

from __future__ import annotations

import logging
import threading

from eventsourcing.persistence import OperationalError

from conversa.app.service import ConversaService

log = logging.getLogger(__name__)

STANDBY_INTERVAL = 2.0
ERROR_BACKOFF = 2.0


class Worker:
    def __init__(self, service: ConversaService) -> None:
        self.service = service

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set. Database outages are waited out, not fatal."""
        if not self.service.settings.log_messages:
            log.info("CONVERSA_LOG_MESSAGES is false: the message log projection is off")
            stop.wait()
            return
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

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run, args=(stop,), name="conversa-worker", daemon=True
        )
        thread.start()
        return thread
