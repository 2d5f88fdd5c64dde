"""Scheduled sends and cancelling, told as stories against a fake Twilio on loopback, on
SQLite and on PostgreSQL. Time is a hand-driven clock, except where the dispatcher's own
timing is the point (then a clock that runs from a fixed start)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from psycopg import sql

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.messages import MessageNotFound, load_message
from conversa.app.projection import MessageQuery
from conversa.app.scheduling import AlreadyAttempted
from conversa.app.service import ConversaService
from conversa.app.worker import Worker
from conversa.domain.message import Message
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, running
from tests.support import make_settings

TO = "+4915112345678"
SALE = {"body": "Winter sale: 20% off until Sunday"}
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AT = START + timedelta(hours=2)
WITHIN = 10.0


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: START)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_service(
    url: str, twilio: FakeTwilio, clock: Callable[[], datetime], **extra: str
) -> ConversaService:
    settings = make_settings(
        url,
        sms_driver="twilio",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        dispatch_poll_seconds="600",
        **extra,
    )
    migrate(settings)
    return bootstrap(settings, clock=clock)


def tick(service: ConversaService) -> int:
    """What a worker does in one round: bring the read model up to date, dispatch."""
    service.projector().catch_up()
    return service.dispatcher.dispatch_due()


def event_types(service: ConversaService, message_id: UUID) -> list[str]:
    return [event["type"] for event in service.message_history(message_id)[1]]


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WITHIN} s")
        time.sleep(0.01)


def test_a_scheduled_send_goes_out_at_its_time_once(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service:
        # Synchronous, asynchronous and batch sends alike: recorded, answered queued,
        # not attempted.
        sync = service.send("sms", TO, SALE, {"send_at": "2026-11-25T14:00:00Z"})
        queued = service.queue("sms", TO, SALE, {"send_at": "2026-11-25T15:00:00+01:00"})
        (item,) = service.send_batch(
            [{"channel": "sms", "to": TO, **SALE, "send_at": "2026-11-25T14:00:00Z"}]
        )
        assert item.result is not None
        results = [sync, queued, item.result]
        for result in results:
            assert (result.ok, result.status, result.message.scheduled_at) == (False, "queued", AT)
            assert result.message.as_dict()["scheduled_at"] == "2026-11-25T14:00:00Z"
        assert twilio.calls == 0
        assert tick(service) == 0

        rows = [service.view.get(r.message_id) for r in results]
        assert [(r.scheduled_at, r.next_attempt_at, r.category) for r in rows if r] == [
            (AT, AT, "transactional")
        ] * 3
        queued_event = service.message_history(sync.message_id)[1][0]
        assert queued_event["scheduled_at"] == "2026-11-25T14:00:00Z"

        clock.now = AT - timedelta(milliseconds=1)
        assert tick(service) == 0
        assert twilio.calls == 0
        clock.now = AT
        assert tick(service) == 3
        assert twilio.calls == 3
        assert [service.get_message(r.message_id).status for r in results] == ["sent"] * 3
        assert event_types(service, sync.message_id) == ["queued", "attempt_started", "sent"]

        clock.advance(3600)
        assert tick(service) == 0
        assert twilio.calls == 3


def test_a_running_worker_sends_a_scheduled_message_when_due_and_not_before(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service, service.running():
        sync = service.send("sms", TO, SALE, {"send_at": AT})
        queued = service.queue("sms", TO, SALE, {"send_at": AT})
        # The drain (which sends asynchronous messages at once) has read the Queued and
        # left it; the dispatcher has scanned a few times.
        head = service.app.recorder.max_notification_id() or 0
        wait_for(lambda: service.drain.caught_up(head), "the drain caught up")
        wait_for(lambda: service.projector().status().position >= head, "the projection")
        time.sleep(1.0)
        assert twilio.calls == 0
        clock.now = AT
        wait_for(
            lambda: all(service.get_message(r.message_id).status == "sent" for r in (sync, queued)),
            "both sent once due",
        )
        assert twilio.calls == 2


@dataclass
class RunningClock:
    """Real time, from a fixed start."""

    start: datetime = START
    began: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)


def test_the_dispatcher_wakes_for_the_scheduled_time_rather_than_at_its_next_scan(
    backend_url: str, twilio: FakeTwilio
) -> None:
    clock = RunningClock()
    with open_service(backend_url, twilio, clock) as service:
        stop = threading.Event()
        # A scan every five minutes: only the wake-up can keep the time.
        thread = Worker(service, dispatch_interval=300.0).start(stop)
        try:
            time.sleep(0.5)  # the dispatcher is in its long wait
            at = clock() + timedelta(seconds=1.5)
            result = service.send("sms", TO, SALE, {"send_at": at})
            wait_for(lambda: service.get_message(result.message_id).status == "sent", "sent")
        finally:
            stop.set()
            thread.join(10)
        message = load_message(service.app, result.message_id)
        (claim,) = [
            e for e in service.app.events.get(message.id) if isinstance(e, Message.AttemptStarted)
        ]
        claimed_at = claim.lease_until - service.lease
        assert timedelta(0) <= claimed_at - at < timedelta(seconds=1)
        assert twilio.calls == 1


def test_a_scheduled_send_survives_a_restart_and_goes_out_once(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as first:
        scheduled = first.send("sms", TO, SALE, {"send_at": AT, "idempotency_key": "sale-1"})
    assert twilio.calls == 0
    # Two new processes' services on the same store; at the time, both scan at once.
    with (
        open_service(backend_url, twilio, clock) as one,
        open_service(backend_url, twilio, clock) as two,
    ):
        replay = one.send("sms", TO, SALE, {"send_at": AT, "idempotency_key": "sale-1"})
        assert (replay.replayed, replay.message_id, replay.status) == (
            True,
            scheduled.message_id,
            "queued",
        )
        assert replay.message.scheduled_at == AT
        one.projector().catch_up()
        clock.now = AT + timedelta(seconds=1)
        barrier = threading.Barrier(2)
        made: list[int] = []

        def scan(service: ConversaService) -> None:
            barrier.wait()
            made.append(service.dispatcher.dispatch_due())

        threads = [threading.Thread(target=scan, args=(s,)) for s in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WITHIN)
        assert sorted(made) == [0, 1]
        assert twilio.calls == 1
        assert tick(two) == 0
        assert two.get_message(scheduled.message_id).status == "sent"
        again = two.send("sms", TO, SALE, {"send_at": AT, "idempotency_key": "sale-1"})
        assert (again.replayed, again.status) == (True, "sent")
        assert twilio.calls == 1


def test_a_cancelled_message_is_never_sent(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service:
        scheduled = service.send("sms", TO, SALE, {"send_at": AT})
        for_drain = service.queue("sms", TO, SALE, {})  # no worker runs yet

        cancelled = service.cancel(scheduled.message_id)
        assert (cancelled.status, cancelled.scheduled_at) == ("cancelled", AT)
        assert service.cancel(str(for_drain.message_id)).status == "cancelled"
        # Again: the same answer, nothing recorded.
        assert service.cancel(scheduled.message_id).status == "cancelled"
        assert event_types(service, scheduled.message_id) == ["queued", "cancelled"]

        # Neither the drain (its Queued read, its claim refused) nor the due scan sends.
        with service.running():
            head = service.app.recorder.max_notification_id() or 0
            wait_for(lambda: service.drain.caught_up(head), "the drain caught up")
        clock.now = AT + timedelta(days=1)
        assert tick(service) == 0
        assert twilio.calls == 0

        page = service.list_messages(MessageQuery(status="cancelled"))
        assert page.total == 2
        assert {row.id for row in page.rows} == {scheduled.message_id, for_drain.message_id}
        assert service.list_messages(MessageQuery(status="queued")).total == 0

        # A message whose attempt has started cannot be cancelled.
        sent = service.send("sms", TO, SALE, {})  # synchronous: attempted at once
        with pytest.raises(AlreadyAttempted):
            service.cancel(sent.message_id)
        with pytest.raises(MessageNotFound):
            service.cancel(uuid4())
        assert twilio.calls == 1

        service.projector().catch_up()
        live = service.view.all_rows()
        assert len(live) == 3
        with service.backend.projection_lock() as acquired:
            assert acquired
            service.projector().rebuild()
        assert service.view.all_rows() == live


def test_a_cancel_and_a_claim_that_race_are_settled_by_the_store(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service:
        # The same version read twice: a claim and a cancel cannot both be recorded.
        first = service.send("sms", TO, SALE, {"send_at": AT})
        claimer = load_message(service.app, first.message_id)
        canceller = load_message(service.app, first.message_id)
        assert claimer.claim_attempt(AT, AT + service.lease)
        assert canceller.cancel()
        service.writer.save(claimer)
        with pytest.raises(IntegrityError):
            service.writer.save(canceller)
        with pytest.raises(AlreadyAttempted):
            service.cancel(first.message_id)

        # Really at once, many times: exactly one of the two wins each race.
        clock.now = AT - timedelta(seconds=1)
        ids = [service.send("sms", TO, SALE, {"send_at": AT}).message_id for _ in range(8)]
        service.projector().catch_up()
        clock.now = AT
        outcomes = [race(service, message_id) for message_id in ids]
        assert set(outcomes) <= {("cancelled", False), ("refused", True)}
        attempted = sum(claimed for _, claimed in outcomes)
        assert twilio.calls == attempted
        statuses = [service.get_message(i).status for i in ids]
        assert statuses.count("cancelled") == len(ids) - attempted


def race(service: ConversaService, message_id: UUID) -> tuple[str, bool]:
    """A cancel and the due scan's claim of one message, started at the same instant:
    what the cancel answered, and whether the scan made an attempt."""
    barrier = threading.Barrier(2)
    cancel: list[str] = []
    claim: list[bool] = []

    def cancelling() -> None:
        barrier.wait()
        try:
            cancel.append(service.cancel(message_id).status)
        except AlreadyAttempted:
            cancel.append("refused")

    def claiming() -> None:
        barrier.wait()
        claim.append(service.dispatcher.dispatch(message_id))

    threads = [threading.Thread(target=cancelling), threading.Thread(target=claiming)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WITHIN)
    return cancel[0], claim[0]


def test_an_earlier_read_model_gains_the_new_columns(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service:
        scheduled = service.send("sms", TO, SALE, {"send_at": AT, "category": "marketing"})
        service.projector().catch_up()
    # The table as the previous version made it.
    _drop_new_columns(backend_url)
    with open_service(backend_url, twilio, clock) as service:  # migrates
        with service.backend.projection_lock() as acquired:
            assert acquired
            service.projector().rebuild()
        row = service.view.get(scheduled.message_id)
        assert row is not None
        assert (row.category, row.scheduled_at) == ("marketing", AT)


def _drop_new_columns(url: str) -> None:
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as connection:
            for column in ("category", "scheduled_at"):
                connection.execute(f"ALTER TABLE conversa_messages DROP COLUMN {column}")
        return
    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN category, DROP COLUMN scheduled_at").format(
                sql.Identifier(schema, "conversa_messages")
            )
        )
