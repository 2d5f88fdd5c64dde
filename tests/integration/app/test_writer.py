"""The group commit (BatchingWriter) on both stores: callers' writes share a transaction,
each caller gets its own answer, an outage fails every caller of its batch, and closing
commits what is queued first.

The committer is held inside its first save by a gate (the save itself is the real one),
so that the other callers queue up behind it deterministically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.messages import load_message
from conversa.app.outage import DATABASE_OUTAGE, DatabaseUnavailable
from conversa.app.service import ConversaService
from conversa.app.writer import BatchingWriter
from conversa.domain.message import Message
from tests.pgcluster import throwaway_cluster
from tests.support import make_settings, queued_message


class GatedApp:
    """The real application, whose first save waits until the test opens the gate."""

    def __init__(self, app: ConversaApp) -> None:
        self.app = app
        self.saves = 0
        self.entered = threading.Event()
        self.gate = threading.Event()

    def save(self, *objs: Any) -> Any:
        self.saves += 1
        if self.saves == 1:
            self.entered.set()
            assert self.gate.wait(20), "the test never opened the gate"
        return self.app.save(*objs)


def gated_writer(app: ConversaApp, max_batch: int = 100) -> tuple[BatchingWriter, GatedApp]:
    gated = GatedApp(app)
    return BatchingWriter(cast(ConversaApp, gated), max_batch=max_batch), gated


class Callers:
    """Threads each calling ``writer.save``; what each got."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: dict[str, BaseException | None] = {}

    def start(self, name: str, call: Callable[[], None]) -> None:
        def run() -> None:
            try:
                call()
            except BaseException as error:
                self.results[name] = error
            else:
                self.results[name] = None

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def join(self) -> dict[str, BaseException | None]:
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive()
        return self.results


def wait_queued(writer: BatchingWriter, count: int) -> None:
    deadline = time.monotonic() + 10
    while writer.queued() < count:
        assert time.monotonic() < deadline, f"{writer.queued()} of {count} queued"
        time.sleep(0.005)


def message(key: str) -> Message:
    return queued_message(key=key)


@pytest.fixture
def app(service: ConversaService) -> ConversaApp:
    return service.app


def test_concurrent_saves_commit_together_and_each_caller_hears_of_its_own(
    app: ConversaApp,
) -> None:
    writer, gated = gated_writer(app)
    callers = Callers()
    first = message("first")
    callers.start("first", lambda: writer.save(first))
    assert gated.entered.wait(10)
    # Queued behind the first transaction: ten new messages, and a duplicate of one of them.
    batch = [message(f"m{n}") for n in range(10)]
    for n, each in enumerate(batch):
        callers.start(f"m{n}", lambda each=each: writer.save(each))  # type: ignore[misc]
    wait_queued(writer, 10)
    duplicate = message("m3")
    callers.start("duplicate", lambda: writer.save(duplicate))
    wait_queued(writer, 11)
    gated.gate.set()
    results = callers.join()
    writer.close()

    assert isinstance(results.pop("duplicate"), IntegrityError)
    assert results == dict.fromkeys(["first", *(f"m{n}" for n in range(10))])
    # One transaction for the first, one for the batch that conflicted, and the batch
    # saved again group by group.
    assert writer.batches == 2
    assert gated.saves == 2 + 11
    for each in [first, *batch]:
        assert load_message(app, each.id).version == 1


def test_groups_of_one_caller_are_answered_each(app: ConversaApp) -> None:
    writer, gated = gated_writer(app)
    gated.gate.set()
    stored = message("stored")
    writer.save(stored)
    fresh, again = message("fresh"), message("stored")
    results = writer.save_each([[fresh], [again]])
    writer.close()
    assert results[0] is None
    assert isinstance(results[1], IntegrityError)
    assert load_message(app, fresh.id).version == 1


def test_a_batch_takes_at_most_max_batch_groups(app: ConversaApp) -> None:
    writer, gated = gated_writer(app, max_batch=4)
    callers = Callers()
    callers.start("first", lambda: writer.save(message("first")))
    assert gated.entered.wait(10)
    for n in range(10):
        callers.start(f"m{n}", lambda n=n: writer.save(message(f"m{n}")))  # type: ignore[misc]
    wait_queued(writer, 10)
    gated.gate.set()
    assert set(callers.join().values()) == {None}
    writer.close()
    assert writer.batches == 1 + 3  # 10 queued, at most 4 a transaction
    assert writer.groups == 11


def test_an_event_that_cannot_be_stored_fails_its_caller_alone(app: ConversaApp) -> None:
    writer, gated = gated_writer(app)
    callers = Callers()
    callers.start("first", lambda: writer.save(message("first")))
    assert gated.entered.wait(10)
    good = message("good")
    bad = queued_message(key="bad", meta={"unencodable": object()})
    callers.start("good", lambda: writer.save(good))
    callers.start("bad", lambda: writer.save(bad))
    wait_queued(writer, 2)
    gated.gate.set()
    results = callers.join()
    writer.close()
    assert results["first"] is None and results["good"] is None
    assert isinstance(results["bad"], TypeError)
    assert load_message(app, good.id).version == 1


def test_close_commits_what_is_queued_then_saves_directly(app: ConversaApp) -> None:
    writer, gated = gated_writer(app)
    callers = Callers()
    queued = [message(f"q{n}") for n in range(5)]
    callers.start("first", lambda: writer.save(message("first")))
    assert gated.entered.wait(10)
    for n, each in enumerate(queued):
        callers.start(f"q{n}", lambda each=each: writer.save(each))  # type: ignore[misc]
    wait_queued(writer, 5)
    closing = threading.Thread(target=writer.close)
    closing.start()
    time.sleep(0.05)
    assert closing.is_alive()  # it waits for the queued writes
    gated.gate.set()
    closing.join(20)
    assert not closing.is_alive()
    assert set(callers.join().values()) == {None}
    for each in queued:
        assert load_message(app, each.id).version == 1
    after = message("after")
    writer.save(after)  # no committer any more: committed in this thread
    assert load_message(app, after.id).version == 1


@pytest.fixture
def unreachable_app() -> Iterator[ConversaApp]:
    """An application whose PostgreSQL has just been stopped: every save fails as in an
    outage, within a second."""
    with throwaway_cluster() as cluster:
        settings = make_settings(cluster.url(), db_timeout_seconds="1")
        migrate(settings)
        service = bootstrap(settings)
        service.writer.save(message("before"))
        cluster.stop()
        try:
            yield service.app
        finally:
            service.close()


@pytest.mark.postgres
def test_an_outage_fails_every_caller_of_the_batch(unreachable_app: ConversaApp) -> None:
    writer, gated = gated_writer(unreachable_app)
    callers = Callers()
    callers.start("first", lambda: writer.save(message("first")))
    assert gated.entered.wait(10)
    for n in range(5):
        callers.start(f"m{n}", lambda n=n: writer.save(message(f"m{n}")))  # type: ignore[misc]
    wait_queued(writer, 5)
    gated.gate.set()
    results = callers.join()
    writer.close()
    assert len(results) == 6
    for error in results.values():
        assert isinstance(error, DATABASE_OUTAGE), error
    # Each caller got an error of its own (same type), not one object shared by threads.
    errors = [e for e in results.values() if isinstance(e, DatabaseUnavailable)]
    assert len({id(e) for e in errors}) == len(errors)
