"""The one way the application records events: hand the aggregates to the writer.

Every write of a request path (a send's ``Queued`` and outcome, a claim, a status report)
goes through :class:`Writer`, so that one process can commit many callers' aggregates in
one transaction (a group commit) without any caller knowing. Each caller still gets only
its own result: its aggregates are committed when ``save`` returns, and a conflict on one
of them raises the event store's ``IntegrityError`` to that caller alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp


class Writer(Protocol):
    def save(self, *aggregates: Aggregate) -> None:
        """Commit the pending events of ``aggregates`` together, atomically; return once
        they are committed. Raises ``IntegrityError`` when one of them conflicts with what
        is stored (an idempotent duplicate, a concurrent change: decide again), or an
        outage error (then it may or may not have been committed)."""

    def save_each(self, groups: Sequence[Sequence[Aggregate]]) -> list[IntegrityError | None]:
        """Commit each group of aggregates atomically, but independently of the others: many
        groups share a transaction when none conflicts. Returns, per group, ``None`` when it
        was committed or the ``IntegrityError`` that refused it (that group alone); raises an
        outage error as ``save`` does."""


class DirectWriter:
    """Each save in a transaction of its own: the event store's own ``save``."""

    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def save(self, *aggregates: Aggregate) -> None:
        self.app.save(*aggregates)

    def save_each(self, groups: Sequence[Sequence[Aggregate]]) -> list[IntegrityError | None]:
        return save_groups(self.app, groups)


def save_groups(
    app: ConversaApp, groups: Sequence[Sequence[Aggregate]]
) -> list[IntegrityError | None]:
    """All groups in one transaction; when one of them conflicts, each group on its own, so
    that every group gets its own answer (an idempotent duplicate refuses only itself)."""
    # Saving takes the pending events off the aggregates, even when the transaction fails:
    # take them first, so that a refused batch can be saved again group by group.
    events = [
        [event for aggregate in group for event in aggregate.collect_events()] for group in groups
    ]
    try:
        app.save(*(event for group_events in events for event in group_events))
    except IntegrityError as error:
        if len(groups) == 1:
            return [error]
    else:
        return [None] * len(groups)
    results: list[IntegrityError | None] = []
    for group_events in events:
        try:
            app.save(*group_events)
        except IntegrityError as error:
            results.append(error)
        else:
            results.append(None)
    return results
