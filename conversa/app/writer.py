"""The one way the application records events: hand the aggregates to the writer.

Every write of a request path (a send's ``Queued`` and outcome, a claim, a status report)
goes through :class:`Writer`, so that one process can commit many callers' aggregates in
one transaction (a group commit) without any caller knowing. Each caller still gets only
its own result: its aggregates are committed when ``save`` returns, and a conflict on one
of them raises the event store's ``IntegrityError`` to that caller alone.

- :class:`DirectWriter`: each save in a transaction of its own, in the caller's thread.
- :class:`BatchingWriter`: one committer thread per process. Callers queue their groups
  and wait; the committer takes everything queued (up to ``max_batch`` groups) into one
  transaction, then answers each caller. While one transaction commits, the next batch
  gathers, so a busy process pays one commit (one table lock, one WAL flush) for many
  callers, and an idle one pays no wait at all.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.unchanged import UNCHANGED, StaleRead, Unchanged

log = logging.getLogger(__name__)

#: Groups of aggregates one transaction of the batching writer takes at most.
DEFAULT_WRITE_BATCH_SIZE = 100

Results = list[IntegrityError | None]
_Events = list[DomainEventProtocol[UUID]]
#: A group's events, and the conditions its commit rests on (see unchanged.py).
_EventGroup = tuple[_Events, tuple[Unchanged, ...]]


class Writer(Protocol):
    def save(self, *aggregates: Aggregate, unchanged: Sequence[Unchanged] = ()) -> None:
        """Commit the pending events of ``aggregates`` together, atomically; return once
        they are committed. Raises ``IntegrityError`` when one of them conflicts with what
        is stored (an idempotent duplicate, a concurrent change: decide again), or an
        outage error (then it may or may not have been committed). ``unchanged``: the
        conditions of the commit (``StaleRead`` when one does not hold)."""

    def save_each(
        self,
        groups: Sequence[Sequence[Aggregate]],
        unchanged: Sequence[Sequence[Unchanged]] | None = None,
    ) -> Results:
        """Commit each group of aggregates atomically, but independently of the others: many
        groups share a transaction when none conflicts. Returns, per group, ``None`` when it
        was committed or the ``IntegrityError`` that refused it (that group alone); raises an
        outage error as ``save`` does. ``unchanged``: each group's conditions."""

    def close(self) -> None:
        """Commit what is queued, then stop. Saves made after this commit directly."""


class DirectWriter:
    """Each save in a transaction of its own: the event store's own ``save``."""

    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def save(self, *aggregates: Aggregate, unchanged: Sequence[Unchanged] = ()) -> None:
        if unchanged:
            self.app.save(*aggregates, **{UNCHANGED: tuple(unchanged)})
        else:
            self.app.save(*aggregates)

    def save_each(
        self,
        groups: Sequence[Sequence[Aggregate]],
        unchanged: Sequence[Sequence[Unchanged]] | None = None,
    ) -> Results:
        return save_groups(self.app, groups, unchanged)

    def close(self) -> None:
        pass


def save_groups(
    app: ConversaApp,
    groups: Sequence[Sequence[Aggregate]],
    unchanged: Sequence[Sequence[Unchanged]] | None = None,
) -> Results:
    """All groups in one transaction; when one of them conflicts, each group on its own, so
    that every group gets its own answer (an idempotent duplicate refuses only itself)."""
    return save_event_groups(app, collect_groups(groups, unchanged))


def collect_groups(
    groups: Sequence[Sequence[Aggregate]],
    unchanged: Sequence[Sequence[Unchanged]] | None = None,
) -> list[_EventGroup]:
    # Saving takes the pending events off the aggregates, even when the transaction fails:
    # take them first, so that a refused batch can be saved again group by group.
    conditions = unchanged if unchanged is not None else [()] * len(groups)
    if len(conditions) != len(groups):
        raise ValueError("one sequence of conditions per group")
    return [
        ([event for aggregate in group for event in aggregate.collect_events()], tuple(each))
        for group, each in zip(groups, conditions, strict=True)
    ]


def _save(app: ConversaApp, groups: Sequence[_EventGroup]) -> None:
    events = [event for group_events, _ in groups for event in group_events]
    conditions = tuple(condition for _, each in groups for condition in each)
    if not conditions:
        app.save(*events)
        return
    if len(groups) > 1:
        # A condition on an aggregate that another group of this transaction changes
        # would be checked against the state before that change, and the two would
        # commit as one: save each group on its own instead (in order), so that the
        # conditioned one is decided again after the change.
        writers: dict[UUID, set[int]] = {}
        for index, (group_events, _) in enumerate(groups):
            for each_event in group_events:
                writers.setdefault(each_event.originator_id, set()).add(index)
        for index, (_, each) in enumerate(groups):
            if any(writers.get(c.originator_id, set()) - {index} for c in each):
                raise StaleRead
    app.save(*events, **{UNCHANGED: conditions})


def save_event_groups(app: ConversaApp, events: Sequence[_EventGroup]) -> Results:
    """:func:`save_groups` for events already taken off their aggregates."""
    try:
        _save(app, events)
    except StaleRead as error:
        if len(events) == 1:
            return [error]
        # A send's assumption about a recipient was out of date (see known_recipients.py):
        # refuse the groups whose conditions no longer hold, found with one read, and
        # save the others together, rather than every group in a transaction of its own.
        stale = _stale_groups(app, events)
        if stale:
            rest = iter(save_event_groups(app, [g for i, g in enumerate(events) if i not in stale]))
            return [StaleRead() if i in stale else next(rest) for i in range(len(events))]
    except IntegrityError as error:
        if len(events) == 1:
            return [error]
    else:
        return [None] * len(events)
    results: Results = []
    for group in events:
        try:
            _save(app, [group])
        except IntegrityError as error:
            results.append(error)
        else:
            results.append(None)
    return results


def _stale_groups(app: ConversaApp, groups: Sequence[_EventGroup]) -> set[int]:
    """The groups with a condition that does not hold now (empty when the recorder cannot
    tell in one read, or none is found: the caller then saves group by group)."""
    select = getattr(app.recorder, "select_events_of", None)
    ids = {condition.originator_id for _, each in groups for condition in each}
    if select is None or not ids:
        return set()
    latest: dict[UUID, int] = {}
    for stored in select(list(ids)):
        originator = UUID(str(stored.originator_id))
        latest[originator] = max(latest.get(originator, 0), stored.originator_version)
    return {
        index
        for index, (_, each) in enumerate(groups)
        if any(latest.get(c.originator_id, 0) != c.version for c in each)
    }


class _Request:
    """One caller's groups, and its answer once the committer has one."""

    __slots__ = ("done", "error", "events", "results")

    def __init__(self, events: list[_EventGroup]) -> None:
        self.events = events
        self.results: Results = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def answer(self, results: Results) -> None:
        self.results = results
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class BatchingWriter:
    """A group commit: concurrent callers' groups in one transaction, committed by one
    thread; each caller blocks until the transaction holding its groups has committed
    (or failed) and gets its own answer.

    - a conflict refuses only the groups that conflict (the batch is saved again group
      by group: see :func:`save_event_groups`);
    - an outage (the database cannot be reached) fails every caller of that batch with
      the outage error, as a direct save would have: each of them may or may not have been
      committed, and handles it as it handles any outage. The callers queued behind that
      batch get it too (they waited as long as a direct save would have tried), so no
      caller waits longer than one ``CONVERSA_DB_TIMEOUT_SECONDS`` and a bit;
    - any other error (a bug, an event that cannot be stored) is narrowed down: each
      caller of the batch is saved again alone, and only the faulty one gets the error.
    """

    def __init__(self, app: ConversaApp, *, max_batch: int = DEFAULT_WRITE_BATCH_SIZE) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.app = app
        self.max_batch = max_batch
        self._queue: deque[_Request] = deque()
        self._lock = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Transactions committed and groups they held (for tests and diagnostics).
        self.batches = 0
        self.groups = 0

    def save(self, *aggregates: Aggregate, unchanged: Sequence[Unchanged] = ()) -> None:
        [result] = self.save_each([aggregates], [unchanged])
        if result is not None:
            raise result

    def save_each(
        self,
        groups: Sequence[Sequence[Aggregate]],
        unchanged: Sequence[Sequence[Unchanged]] | None = None,
    ) -> Results:
        if not groups:
            return []
        request = _Request(collect_groups(groups, unchanged))
        with self._lock:
            if self._closed:
                queued = False
            else:
                queued = True
                self._queue.append(request)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="conversa-writer", daemon=True
                    )
                    self._thread.start()
                self._lock.notify()
        if not queued:  # closed: no committer any more, commit in this thread
            return save_event_groups(self.app, request.events)
        request.done.wait()
        if request.error is not None:
            raise _own_copy(request.error)
        return request.results

    def queued(self) -> int:
        """Callers waiting for a transaction that has not begun yet."""
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        """Commit everything queued, then stop the committer."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:  # closed, and everything queued is answered
                    return
                batch = self._take()
            self._commit(batch)

    def _take(self) -> list[_Request]:
        batch = [self._queue.popleft()]
        size = len(batch[0].events)
        while self._queue and size + len(self._queue[0].events) <= self.max_batch:
            request = self._queue.popleft()
            size += len(request.events)
            batch.append(request)
        return batch

    def _commit(self, batch: list[_Request]) -> None:
        groups = [group for request in batch for group in request.events]
        try:
            results = save_event_groups(self.app, groups)
        except DATABASE_OUTAGE as error:
            # Those queued meanwhile have waited as long as this batch tried: they get the
            # outage too, rather than as long again (a direct save would have failed in the
            # same time). Whoever comes next starts a fresh try.
            with self._lock:
                waiting = list(self._queue)
                self._queue.clear()
            for request in [*batch, *waiting]:
                request.fail(error)
            return
        except Exception as error:
            if len(batch) == 1:
                batch[0].fail(error)
                return
            log.warning(
                "a batch of %d writes failed (%s); saving each on its own",
                len(batch),
                type(error).__name__,
            )
            for request in batch:
                self._commit([request])
            return
        except BaseException as error:  # the committer itself is stopping: answer everyone
            for request in batch:
                request.fail(error)
            raise
        self.batches += 1
        self.groups += len(groups)
        start = 0
        for request in batch:
            end = start + len(request.events)
            request.answer(results[start:end])
            start = end


def _own_copy(error: BaseException) -> BaseException:
    """The committer's error, as a new exception of the same type for each caller: one
    exception object raised in many threads at once would have its traceback mixed up."""
    try:
        copy = type(error)(*error.args)
    except Exception:
        return error
    copy.__cause__ = error
    return copy
