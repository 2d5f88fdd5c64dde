"""Runs the read-model projection: catch-up, live following and rebuild, in batches.

The library's ProjectionRunner spends one transaction per event (about 1,200 events/s
here). This runner reads events in pages, reads each event's stored state straight into
the few values the fold needs (:mod:`conversa.app.stored_facts`), folds the page into
one write per row it touches, and writes those rows, their counters and the page's last
position in one transaction. Safety is the same: the position and the rows move
together, and the view refuses a position that is not ahead of the stored one.

A rebuild reads the store message by message instead, folds each message's events into
its final row and has the view write every row once into a new table that replaces the
old one (see :meth:`Projector.rebuild`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from conversa.app.application import ConversaApp
from conversa.app.hourly import count_changes
from conversa.app.ports import EventSignal, StopSignal
from conversa.app.projection import (
    CREATING,
    EventFacts,
    HourKey,
    MessageRow,
    MessagesView,
    ProjectionOutOfSequence,
    RowChanges,
    StoredRecord,
    apply_event,
    count_key,
    fold_facts,
)
from conversa.app.stored_facts import StoredFactsReader
from conversa.domain.status import Status

log = logging.getLogger(__name__)
QUEUED = Status.QUEUED.value

#: Events per batch of catch-up and live following (a live batch holds what arrived).
DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class ProjectionStall:
    """The projection cannot go past ``position``: applying the next batch fails so."""

    position: int
    error: str


@dataclass(slots=True)
class _Folded:
    """What a batch of events does to the read model."""

    changes: RowChanges = field(default_factory=RowChanges)
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
        self._facts = StoredFactsReader(app.mapper)

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
        last = notifications[-1][0]
        try:
            self.view.store(folded.changes, Tracking(self.app.name, last))
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
                self._fold(notifications, check=True)
        except Exception as error:
            if (self.view.max_tracking_id(self.app.name) or 0) != position:
                # The projection moved on meanwhile: the rows read were newer than the
                # position, so the failure says nothing; a moving projection is not stuck.
                return None
            return ProjectionStall(position, _describe(error))
        return None

    def _next_page(self, position: int) -> list[tuple[int, StoredRecord]]:
        return self.view.events_after(position, self.batch_size)

    def _fold(
        self, notifications: list[tuple[int, StoredRecord]], *, check: bool = False
    ) -> _Folded:
        """Fold a page into one write per row. Only the rows of messages whose first
        event in the page is not ``Queued`` are read first: a ``Queued`` makes its row,
        and the view refuses it if the row exists (``check``: read those too, and fail
        here, as the write would)."""
        facts_of = self._facts.facts
        facts = [
            f
            for _, (originator_id, version, topic, state) in notifications
            if (f := facts_of(topic, originator_id, version, state))
            is not None  # other aggregates share the store; their positions still count
        ]
        by_message: dict[UUID, list[EventFacts]] = {}
        for f in facts:
            by_message.setdefault(f.message_id, []).append(f)
        before = self.view.load(
            [i for i, events in by_message.items() if check or events[0].kind not in CREATING]
        )
        rows: dict[UUID, MessageRow | None] = {}
        folded = _Folded()
        for message_id, events in by_message.items():
            row = before.get(message_id)
            if row is None and events[0].kind not in CREATING:
                if not self.keep_finished:
                    continue  # a finished message whose row is not kept
                # A row the log did not keep (CONVERSA_LOG_MESSAGES was false when the
                # message finished), needed again: make it what a rebuild would have.
                row = self._row_before(message_id, events[0].version)
                folded.rebuilt.append(message_id)
            count_changes(row, events, folded.changes.hourly, keep_finished=self.keep_finished)
            row = fold_facts(row, events)
            # Without the message log, a row goes once its message leaves queued.
            rows[message_id] = row if self._kept(row) else None
        changes = folded.changes
        counts: dict[tuple[str, ...], int] = {}
        for message_id in by_message:
            old, new = before.get(message_id), rows.get(message_id)
            if old is not None:
                key = count_key(old)
                counts[key] = counts.get(key, 0) - 1
                if new is None:
                    changes.removed.append(message_id)
                    if old.conversation_id is not None:
                        changes.conversations.add(old.conversation_id)
                else:
                    changes.updated.append(new)
                    if new.conversation_id != old.conversation_id:
                        # Moved to the conversation of the number it was sent from: both
                        # are computed again, so it is counted in the new one only.
                        for moved in (old.conversation_id, new.conversation_id):
                            if moved is not None:
                                changes.conversations.add(moved)
            elif new is not None:
                changes.created.append(new)
                if new.conversation_id is not None:
                    changes.conversations.add(new.conversation_id)
            if new is not None:
                key = count_key(new)
                counts[key] = counts.get(key, 0) + 1
        changes.counts = {key: n for key, n in counts.items() if n}
        changes.hourly = {key: n for key, n in changes.hourly.items() if n}
        return folded

    def _row_before(self, message_id: UUID, version: int) -> MessageRow | None:
        """The message's row just before its event ``version``, folded from its stored
        events."""
        row = None
        for stored in self.app.events.get(message_id, lte=version - 1):
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
        """Replace the read model with one folded from every event stored so far, and
        return how many events that was.

        Each message's events are read together, in version order, and folded into its
        final row, so every row is written once; the view fills the new table beside the
        old one and swaps them in one transaction (readers see the old table until then),
        with the counters and the position (the event-store head when the rebuild began).
        A rebuild that fails leaves the table as it was.

        Only call this while holding the projection lock: a live follower would otherwise
        keep its old position and leave the new table short of rows.
        """
        head = self.app.recorder.max_notification_id() or 0
        events = 0
        hourly: dict[HourKey, int] = {}
        keep_finished = self.keep_finished

        def rows() -> Iterator[MessageRow]:
            nonlocal events
            facts_of = self._facts.facts
            kept = self._kept
            current: list[EventFacts] = []
            current_id: UUID | None = None
            for chunk in self.view.stored_events(head):
                events += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
                for originator_id, version, topic, state in chunk:
                    facts = facts_of(topic, originator_id, version, state)
                    if facts is None:
                        continue
                    if originator_id != current_id:
                        if current:
                            count_changes(None, current, hourly, keep_finished=keep_finished)
                            row = fold_facts(None, current)
                            if kept(row):
                                yield row
                        current, current_id = [], originator_id
                    current.append(facts)
            if current:
                count_changes(None, current, hourly, keep_finished=keep_finished)
                row = fold_facts(None, current)
                if kept(row):
                    yield row

        tracking = Tracking(self.app.name, head) if head else None
        # The fold makes millions of short-lived objects and no cycles: the cyclic
        # collector would only walk them over and over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.view.replace_all(rows(), tracking, hourly)
        finally:
            if collecting:
                gc.enable()
        self._position = None
        return events

    def _kept(self, row: MessageRow) -> bool:
        # Without the message log, only messages still waiting keep their rows; a status
        # never goes back to queued, so the final row decides, as following live does.
        return self.keep_finished or row.status == QUEUED


def _describe(error: Exception) -> str:
    """The error, said without any stored value: only Conversa's own messages, which name
    ids and versions, are quoted; a driver's or library's could quote a row's data."""
    if isinstance(error, ProjectionOutOfSequence):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__
