"""Asynchronous and batch sends through the Python API, on SQLite and on PostgreSQL: the
caller is answered once the message is recorded, and the dispatcher sends it, woken at
once (the poll interval is ten minutes: a message sent within the test was woken for)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from conversa.adapters.providers.log import LogDriver
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.ports import DriverResult, OutboundMessage
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService
from conversa.domain.channel import Channel
from conversa.domain.errors import IdempotencyKeyMismatch, InvalidRequest
from conversa.domain.status import Status
from tests.support import make_settings

TO = "+15551234567"
READY = "Your table is ready"
POLL = "600"
WITHIN = 20.0


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingDriver(LogDriver):
    """The log driver, counting the calls each message gets."""

    def __init__(self) -> None:
        super().__init__(log_text=False)
        self.calls: Counter[str] = Counter()
        self.contents: dict[str, str] = {}
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> DriverResult:
        with self._lock:
            self.calls[str(message.message_id)] += 1
            self.contents[str(message.message_id)] = str(message.content.as_dict())
        return super().send(message)


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


def open_service(url: str, driver: CountingDriver, **settings: str) -> ConversaService:
    config = make_settings(url, dispatch_poll_seconds=POLL, **settings)
    migrate(config)
    return bootstrap(config, drivers={Channel.SMS: driver, Channel.WHATSAPP: driver})


@pytest.fixture
def service(backend_url: str, driver: CountingDriver) -> Iterator[ConversaService]:
    with open_service(backend_url, driver) as service:
        yield service


def wait_sent(service: ConversaService, *message_ids: str) -> None:
    deadline = time.monotonic() + WITHIN
    for message_id in message_ids:
        while service.get_message(message_id).status == "queued":
            assert time.monotonic() < deadline, f"{message_id} was not sent in time"
            time.sleep(0.01)


def test_queue_answers_queued_and_the_dispatcher_sends_it(
    service: ConversaService, driver: CountingDriver
) -> None:
    with service.running():
        # An application that must not wait for the provider queues its message.
        queued = service.queue(
            "sms", TO, {"body": "Your table is ready"}, {"idempotency_key": "t1"}
        )
        assert queued.status == "queued" and not queued.replayed and not queued.ok
        # The dispatcher of this process is woken by the commit and sends it.
        wait_sent(service, str(queued.message_id))
    message = service.get_message(queued.message_id)
    assert message.status == "sent" and message.attempts == 1
    assert driver.calls[str(queued.message_id)] == 1

    # The same key again: the stored message, now sent; another request with it: refused.
    again = service.queue("sms", TO, {"body": READY}, {"idempotency_key": "t1"})
    assert again.replayed and again.message_id == queued.message_id and again.status == "sent"
    with pytest.raises(IdempotencyKeyMismatch):
        service.queue("sms", TO, {"body": "Another text"}, {"idempotency_key": "t1"})
    # Invalid input is refused before anything is recorded, as by send().
    with pytest.raises(InvalidRequest) as refused:
        service.queue("sms", "not a number", {"body": "x"})
    assert refused.value.field == "to"
    with pytest.raises(InvalidRequest) as unknown:
        service.queue("sms", TO, {"body": "x"}, {"colour": "red"})
    assert unknown.value.field == "colour"
    # A key used by a synchronous send replays through queue() too, and the other way.
    sync = service.send("sms", TO, {"body": "sync"}, {"idempotency_key": "s1"})
    assert service.queue("sms", TO, {"body": "sync"}, {"idempotency_key": "s1"}).replayed
    assert service.send(
        "sms", TO, {"body": "Your table is ready"}, {"idempotency_key": "t1"}
    ).replayed
    assert driver.calls[str(sync.message_id)] == 1


def test_a_queued_message_waits_for_a_dispatcher_and_leaving_running_sends_it(
    service: ConversaService, driver: CountingDriver
) -> None:
    # Queued before any dispatcher ever ran in this store: the first one starts before it.
    queued = service.queue("sms", TO, {"body": "early"})
    assert driver.calls[str(queued.message_id)] == 0
    with service.running():
        pass  # leaving the block waits until the dispatcher has sent what was queued
    assert service.get_message(queued.message_id).status == "sent"
    assert driver.calls[str(queued.message_id)] == 1


def test_a_batch_records_valid_items_refuses_the_others_and_all_are_sent_once(
    service: ConversaService, driver: CountingDriver
) -> None:
    earlier = service.queue("sms", TO, {"body": "earlier"}, {"idempotency_key": "e1"})
    items: list[dict[str, object]] = [
        {"channel": "sms", "to": TO, "body": f"message {n}", "idempotency_key": f"k{n}"}
        for n in range(300)
    ]
    items += [
        {"channel": "sms", "to": "+1", "body": "bad"},
        {"channel": "sms", "to": TO, "body": "earlier", "idempotency_key": "e1"},
        {"channel": "sms", "to": TO, "body": "changed", "idempotency_key": "e1"},
        {"channel": "sms", "to": TO, "template": {"name": "otp", "variables": ["1"]}},
        {"channel": "sms", "to": TO},
    ]
    results = service.send_batch(items)
    assert [r.index for r in results] == list(range(len(items)))
    assert all(r.accepted and not r.result.replayed for r in results[:300])  # type: ignore[union-attr]
    assert results[300].error is not None and results[300].error.field == "to"  # type: ignore[attr-defined]
    assert results[301].result is not None and results[301].result.replayed
    assert results[301].result.message_id == earlier.message_id
    assert isinstance(results[302].error, IdempotencyKeyMismatch)
    assert results[303].accepted
    assert results[304].error is not None and results[304].error.field == "body"  # type: ignore[attr-defined]

    # Half of the same batch again, with one more: only the new one is recorded.
    again = service.send_batch([*items[:150], {"channel": "sms", "to": TO, "body": "new"}])
    assert all(r.result is not None and r.result.replayed for r in again[:150])
    assert again[150].result is not None and not again[150].result.replayed

    with service.running():
        pass
    sent = [r.result.message_id for r in [*results, *again] if r.result is not None]
    assert {service.get_message(m).status for m in sent} == {"sent"}
    assert all(driver.calls[str(m)] == 1 for m in sent)
    assert len(driver.calls) == len(set(sent)) + 0  # nothing else was sent
    with pytest.raises(InvalidRequest):
        service.send_batch([items[0]] * 1001)


@pytest.mark.postgres
def test_another_process_queues_and_the_running_dispatcher_is_woken(
    postgres_url: str, driver: CountingDriver
) -> None:
    """On PostgreSQL, NOTIFY reaches the dispatcher of another process (another service
    here, with connections of its own). SQLite has no such signal: there a message queued
    by another process waits for the poll."""
    with ExitStack() as stack:
        worker = stack.enter_context(open_service(postgres_url, driver))
        client = stack.enter_context(open_service(postgres_url, CountingDriver()))
        stack.enter_context(worker.running())
        queued = client.queue("sms", TO, {"body": "from elsewhere"})
        wait_sent(worker, str(queued.message_id))
    assert driver.calls[str(queued.message_id)] == 1


def test_two_dispatchers_send_each_message_once(backend_url: str, driver: CountingDriver) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(open_service(backend_url, driver))
        second = stack.enter_context(open_service(backend_url, driver))
        stack.enter_context(first.running())
        stack.enter_context(second.running())
        ids = []
        for round_ in range(4):
            sender = first if round_ % 2 else second
            results = sender.send_batch(
                [{"channel": "sms", "to": TO, "body": f"{round_}-{n}"} for n in range(100)]
            )
            ids += [str(r.result.message_id) for r in results if r.result is not None]
        wait_sent(first, *ids)
    assert len(ids) == 400
    assert all(driver.calls[m] == 1 for m in ids)


def test_without_stored_bodies_the_content_waits_outside_the_event_store(
    backend_url: str, driver: CountingDriver
) -> None:
    with open_service(backend_url, driver, store_body="false") as service:
        queued = service.queue("sms", TO, {"body": "code 123456"})
        batch = service.send_batch([{"channel": "sms", "to": TO, "body": "code 654321"}])
        assert batch[0].result is not None
        ids = [queued.message_id, batch[0].result.message_id]
        with service.running():
            wait_sent(service, *map(str, ids))
        assert [driver.contents[str(m)] for m in ids] == [
            str({"body": "code 123456"}),
            str({"body": "code 654321"}),
        ]
        # Sent: the content is gone from the payload store too.
        assert all(service.payloads.get(m) is None for m in ids)


def test_pacing_is_wired_from_the_settings(backend_url: str, driver: CountingDriver) -> None:
    with open_service(backend_url, driver, log_max_per_second="50") as service:
        pacer = service.drain.pacers["log"]
        assert pacer.rate == 50 and pacer.burst == 5
        assert service.dispatcher.pacers["log"] is pacer
        results = service.send_batch(
            [{"channel": "sms", "to": TO, "body": f"paced {n}"} for n in range(20)]
        )
        with service.running():
            pass
        assert all(driver.calls[str(r.result.message_id)] == 1 for r in results if r.result)
        # The burst was spent: the pacer has not refilled a whole burst since.
        assert pacer.take(100) < 100


class ReportingDriver(CountingDriver):
    """A provider that calls back before its answer is recorded: while the dispatcher
    waits for ``send``, a delivery report for the message arrives and is recorded."""

    service: ConversaService | None = None

    def send(self, message: OutboundMessage) -> DriverResult:
        result = super().send(message)
        assert self.service is not None and result.provider_message_id is not None
        outcome = self.service.record_report(
            StatusReport(
                provider="log",
                provider_message_id=result.provider_message_id,
                message_id=message.message_id,
                status=Status.DELIVERED,
                raw_status="delivered",
            )
        )
        assert outcome is ReportOutcome.APPLIED
        return result


def test_a_report_recorded_during_the_call_is_kept_with_the_outcome(backend_url: str) -> None:
    driver = ReportingDriver()
    with open_service(backend_url, driver) as service:
        driver.service = service
        results = service.send_batch(
            [{"channel": "sms", "to": TO, "body": f"fast provider {n}"} for n in range(5)]
        )
        with service.running():
            pass
        for item in results:
            assert item.result is not None
            state, events = service.message_history(item.result.message_id)
            # The outcome's save was refused (the report moved the message on first) and
            # recorded again on the message as it stood: delivered, with its provider id.
            assert state.status == "delivered"
            assert state.provider_message_id is not None
            assert [e["type"] for e in events] == ["queued", "attempt_started", "delivered", "sent"]
            assert driver.calls[str(item.result.message_id)] == 1


def test_the_due_scan_leaves_queued_messages_to_a_running_drain(
    backend_url: str, driver: CountingDriver
) -> None:
    clock = Clock()
    config = make_settings(backend_url, dispatch_poll_seconds=POLL)
    migrate(config)
    drivers = {Channel.SMS: driver, Channel.WHATSAPP: driver}
    with bootstrap(config, drivers=drivers, clock=clock) as service:
        # Nothing drains yet: the probe takes the drain's lock, so none runs anywhere.
        assert not service._drain_runs()
        queued = service.queue("sms", TO, {"body": "behind a long backlog"})
        service.projector().catch_up()
        clock.advance(service.lease.total_seconds() + 1)  # its recovery time has come

        # A drain runs elsewhere (it holds the lock), far behind: the scan leaves it be.
        with ExitStack() as stack:
            other = stack.enter_context(open_service(backend_url, CountingDriver()))
            lock = stack.enter_context(other.backend.lock("dispatcher"))
            assert lock
            assert service._drain_runs()
            assert service.dispatcher.dispatch_due() == 0
        assert driver.calls[str(queued.message_id)] == 0
        assert service.get_message(queued.message_id).status == "queued"

        # No drain runs any more: the due scan recovers it, as a crashed send.
        service.dispatcher._drain_seen = (float("-inf"), False)
        service.dispatcher._drains.clear()
        assert service.dispatcher.dispatch_due() == 1
        assert driver.calls[str(queued.message_id)] == 1
        assert service.get_message(queued.message_id).status == "sent"
