"""Runs the read-model projection: catch-up, live following and rebuild, in batches.

The library's ProjectionRunner spends one transaction per event (about 1,200 events/s
here). This runner reads events in pages, folds each page into the rows it touches, and
writes those rows with the page's last position in one transaction, so a rebuild of a
million messages takes minutes. Safety is the same: the position and the rows move
together, and the view refuses a position that is not ahead of the stored one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from conversa.app.application import ConversaApp
from conversa.app.ports import EventSignal, StopSignal
from conversa.app.projection import (
    MessageRow,
    MessagesView,
    ProjectionOutOfSequence,
    apply_event,
)
from conversa.domain.message import Message
from conversa.domain.status import Status

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 2000


@dataclass(frozen=True, slots=True)
class ProjectionStall:
    """The projection cannot go past ``position``: applying the next batch fails so."""

    position: int
    error: str


@dataclass(slots=True)
class _Folded:
    """What a batch of events does to the read model."""

    changed: dict[UUID, MessageRow] = field(default_factory=dict)
    removed: set[UUID] = field(default_factory=set)
    rebuilt: list[UUID] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    position: int
    head: int

    @property
    def lag(self) -> int:
        """Notification ids between the position and the head (an upper bound on events)."""
        return max(self.head - self.position, 0)


class Projector:
    def __init__(
        self,
        app: ConversaApp,
        view: MessagesView,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        keep_finished: bool = True,
    ) -> None:
        """``keep_finished=False`` (``CONVERSA_LOG_MESSAGES=false``) keeps rows only while
        their message waits in ``queued`` (the dispatcher's work list), not as a log."""
        self.app = app
        self.view = view
        self.batch_size = batch_size
        self.keep_finished = keep_finished
        self._position: int | None = None

    def status(self) -> ProjectionStatus:
        return ProjectionStatus(
            position=self.view.max_tracking_id(self.app.name) or 0,
            head=self.app.recorder.max_notification_id() or 0,
        )

    def process_batch(self) -> int:
        """Apply the next page of events; return how many there were (0 when caught up)."""
        if self._position is None:
            self._position = self.view.max_tracking_id(self.app.name) or 0
        notifications = self._next_page(self._position)
        if not notifications:
            return 0
        folded = self._fold(notifications)
        last = notifications[-1].id
        try:
            self.view.store(
                list(folded.changed.values()), Tracking(self.app.name, last), folded.removed
            )
        except IntegrityError:
            # Another process moved the position first; start again from where it is.
            log.warning("projection position moved by another process; re-reading it")
            self._position = None
            return 0
        self._position = last
        if folded.rebuilt:
            log.info(
                "rebuilt %d row(s) from their events: the message log was off when their "
                "messages finished (message_id=%s, ...)",
                len(folded.rebuilt),
                folded.rebuilt[0],
            )
        return len(notifications)

    def check_next_batch(self) -> ProjectionStall | None:
        """Fold the batch after the stored position as the projection would, writing
        nothing, and return what stops it, if anything (None: it goes through).

        Safe from any process at any time, also while another one runs the projection:
        this is how ``conversa diagnose`` tells a stalled projection from a slow one.
        """
        position = self.view.max_tracking_id(self.app.name) or 0
        try:
            notifications = self._next_page(position)
            if notifications:
                self._fold(notifications)
        except Exception as error:
            if (self.view.max_tracking_id(self.app.name) or 0) != position:
                # The projection moved on meanwhile: the rows read were newer than the
                # position, so the failure says nothing; a moving projection is not stuck.
                return None
            return ProjectionStall(position, _describe(error))
        return None

    def _next_page(self, position: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=position, limit=self.batch_size, inclusive_of_start=False
        )

    def _fold(self, notifications: Sequence[Notification]) -> _Folded:
        events = [self.app.mapper.to_domain_event(n) for n in notifications]
        rows: dict[UUID, MessageRow] = self.view.load({e.originator_id for e in events})
        folded = _Folded()
        changed, removed = folded.changed, folded.removed
        for event in events:
            if not isinstance(event, Message.Event):
                continue  # other aggregates share the store; their positions still count
            message_id = event.originator_id
            if message_id in removed:
                continue  # it finished earlier in this batch, and its row is not kept
            row = rows.get(message_id)
            if row is None and not isinstance(event, Message.Queued):
                if not self.keep_finished:
                    continue  # a finished message whose row is not kept
                # A row the log did not keep (CONVERSA_LOG_MESSAGES was false when the
                # message finished), needed again: make it what a rebuild would have.
                row = self._row_before(event)
                folded.rebuilt.append(message_id)
            row = apply_event(row, event)
            rows[message_id] = changed[message_id] = row
            if not self.keep_finished and row.status != Status.QUEUED:
                removed.add(message_id)
                del changed[message_id]
        return folded

    def _row_before(self, event: Message.Event) -> MessageRow | None:
        """The message's row just before ``event``, folded from its stored events."""
        row = None
        earlier = self.app.events.get(event.originator_id, lte=event.originator_version - 1)
        for stored in earlier:
            row = apply_event(row, stored)
        return row

    def catch_up(self, on_progress: Callable[[int], None] | None = None) -> int:
        """Apply every event recorded so far; return how many were applied."""
        total = 0
        while processed := self.process_batch():
            total += processed
            if on_progress is not None:
                on_progress(processed)
        return total

    def run(self, stop: StopSignal, signal: EventSignal, *, idle_wait: float = 1.0) -> None:
        """Follow the event store until ``stop`` is set, waking on ``signal``.

        Call it once each time this process takes the projection lock: it starts from the
        stored position, never from what it remembered, because another process may have
        moved the position on while this one did not hold the lock.
        """
        self._position = None
        while not stop.is_set():
            if self.process_batch() == 0:
                signal.wait(idle_wait)

    def rebuild(self, on_progress: Callable[[int], None] | None = None) -> int:
        """Empty the read model and replay every event into it.

        Only call this while holding the projection lock: a live follower would otherwise
        keep its old position and leave the new table short of rows.
        """
        self.view.reset(self.app.name)
        self._position = None
        return self.catch_up(on_progress)


def _describe(error: Exception) -> str:
    """The error, said without any stored value: only Conversa's own messages, which name
    ids and versions, are quoted; a driver's or library's could quote a row's data."""
    if isinstance(error, ProjectionOutOfSequence):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__
