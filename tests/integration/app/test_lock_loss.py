"""Two workers on one PostgreSQL, and the one running a duty loses its lock without dying:
its lock connection is terminated (an idle timeout, a failover, ``pg_terminate_backend``).
It stops at once, a standby takes over, and no two of them run the duty at the same time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from conversa.app.worker import Worker
from conversa.events import LifecycleEvent
from tests.support import make_settings

pytestmark = pytest.mark.postgres

MESSAGES = 40


@dataclass(frozen=True)
class Handover:
    worker: str
    event_id: int
    started: float
    ended: float


def lock_holder(service: ConversaService, name: str) -> int | None:
    """The server process id of the session that holds the lock ``name``."""
    backend = service.backend
    schema = getattr(backend, "schema")  # noqa: B009 - PostgresBackend's
    with psycopg.connect(getattr(backend, "conninfo")(), autocommit=True) as conn:  # noqa: B009
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = hashtext(%s)::oid AND objid = hashtext(%s)::oid AND objsubid = 2",
            (f"conversa:{schema}", name),
        ).fetchone()
    return None if row is None else int(row[0])


def terminate(service: ConversaService, pid: int) -> None:
    with psycopg.connect(getattr(service.backend, "conninfo")(), autocommit=True) as conn:  # noqa: B009
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def wait_until(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@contextmanager
def running(service: ConversaService, standby_interval: float = 2.0) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = Worker(service, standby_interval=standby_interval).start(stop)
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def test_a_subscriber_whose_lock_connection_dies_stops_and_a_standby_takes_over(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(make_settings(postgres_url))
    handovers: list[Handover] = []
    guard = threading.Lock()

    def recorder(worker: str) -> object:
        def handle(event: LifecycleEvent) -> None:
            started = time.monotonic()
            time.sleep(0.05)
            with guard:
                handovers.append(Handover(worker, event.event_id, started, time.monotonic()))

        return handle

    with ExitStack() as stack:
        services = {
            name: stack.enter_context(bootstrap(make_settings(postgres_url))) for name in ("a", "b")
        }
        for name, service in services.items():
            service.subscribe(LifecycleEvent, recorder(name), name="recorder")  # type: ignore[arg-type]
        a, b = services["a"], services["b"]
        expected = [a.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(MESSAGES)]
        caplog.set_level(logging.INFO, logger="conversa")

        stack.enter_context(running(a))
        wait_until(lambda: len(handovers) >= 5, 15, "worker a never handed anything over")
        stack.enter_context(running(b, standby_interval=0.05))  # a watchful standby
        holder = lock_holder(a, "subscriber:recorder")
        assert holder is not None
        terminate(a, holder)
        lost_at = time.monotonic()

        wait_until(
            lambda: len({h.event_id for h in handovers}) == MESSAGES,
            30,
            "the standby did not take over and finish",
        )
        taken_over = min(h.started for h in handovers if h.worker == "b")

    by_a = [h for h in handovers if h.worker == "a"]
    by_b = [h for h in handovers if h.worker == "b"]
    # Worker a started nothing once its lock was gone; the standby took over quickly.
    assert max(h.started for h in by_a) < lost_at
    assert taken_over - lost_at < 5.0
    # No two hand-overs at the same time, so none out of order: the only repeat possible
    # is the one event a was handing over when it lost the lock.
    for mine in by_a:
        assert all(theirs.started >= mine.ended for theirs in by_b), (mine, by_b[0])
    counts = [h.event_id for h in handovers]
    assert len(counts) - len(set(counts)) <= 1
    first_seen = list(dict.fromkeys(counts))
    assert first_seen == sorted(first_seen)
    assert len(first_seen) == len(expected)
    assert "lost the lock of subscriber:recorder" in caplog.text
    print(f"a handed over {len(by_a)}, b {len(by_b)}; b took over {taken_over - lost_at:.2f} s")


def test_a_projection_that_lost_its_lock_takes_it_back_and_goes_on_from_the_stored_position(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(make_settings(postgres_url))
    caplog.set_level(logging.INFO, logger="conversa")
    with (
        bootstrap(make_settings(postgres_url)) as a,
        bootstrap(make_settings(postgres_url)) as b,
        running(a),
    ):

        def projected(service: ConversaService) -> bool:
            sent = service.send("sms", "+15551234567", {"body": "x"})
            try:
                wait_until(lambda: a.view.get(sent.message_id) is not None, 10, "not projected")
            except AssertionError:
                return False
            return True

        assert projected(a)
        with running(b, standby_interval=0.05):
            holder = lock_holder(a, "projection")
            assert holder is not None
            terminate(a, holder)
            # a stops at once; b, standing by, takes over and moves the position on.
            wait_until(lambda: lock_holder(b, "projection") is not None, 10, "no takeover")
            for _ in range(3):
                assert projected(b)
        # b stopped: a takes the projection back and goes on from where b left it.
        assert projected(a)
        assert a.projector().status().lag == 0

    assert "lost the lock of projection" in caplog.text
    assert "ProjectionOutOfSequence" not in caplog.text
    assert "projection failed" not in caplog.text
