"""The one way the application records events: hand the aggregates to the writer.

Every write of a request path (a send's ``Queued`` and outcome, a claim, a status report)
goes through :class:`Writer`, so that one process can commit many callers' aggregates in
one transaction (a group commit) without any caller knowing. Each caller still gets only
its own result: its aggregates are committed when ``save`` returns, and a conflict on one
of them raises the event store's ``IntegrityError`` to that caller alone.
"""

from __future__ import annotations

from typing import Protocol

from eventsourcing.domain import Aggregate

from conversa.app.application import ConversaApp


class Writer(Protocol):
    def save(self, *aggregates: Aggregate) -> None:
        """Commit the pending events of ``aggregates`` together, atomically; return once
        they are committed. Raises ``IntegrityError`` when one of them conflicts with what
        is stored (an idempotent duplicate, a concurrent change: decide again), or an
        outage error (then it may or may not have been committed)."""


class DirectWriter:
    """Each save in a transaction of its own: the event store's own ``save``."""

    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def save(self, *aggregates: Aggregate) -> None:
        self.app.save(*aggregates)
