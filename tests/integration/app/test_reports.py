"""Status reports applied to messages: any order, any number of times, before the send
is recorded, concurrently; on SQLite and on PostgreSQL, with a fake Twilio on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from conversa.app.subscribers import SubscriberRunner, Subscription
from conversa.app.worker import Worker
from conversa.domain.provider_message import provider_message_id_for
from conversa.domain.status import Status
from conversa.events import LifecycleEvent, MessageFailed
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, Answer, FakeTwilio, Received, running
from tests.support import make_settings

TO = "+15551234567"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


def twilio_settings(url: str, twilio: FakeTwilio, **extra: str) -> Settings:
    return make_settings(
        url,
        sms_driver="twilio",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        webhook_base_url="https://hooks.example.com",
        **extra,
    )


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["100", "1"], ids=["group-commit", "direct"])
def service(
    backend_url: str, twilio: FakeTwilio, request: pytest.FixtureRequest
) -> Iterator[ConversaService]:
    """On each store, with the group commit (the default) and with each write alone."""
    settings = twilio_settings(backend_url, twilio, write_batch_size=request.param)
    migrate(settings)
    with bootstrap(settings) as service:
        yield service


def report(
    status: Status,
    provider_message_id: str | None,
    message_id: UUID | None = None,
    error_code: str | None = None,
) -> StatusReport:
    return StatusReport(
        provider="twilio",
        provider_message_id=provider_message_id,
        message_id=message_id,
        status=status,
        raw_status=status.value,
        error_code=error_code,
    )


def history(service: ConversaService, message_id: UUID) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(message_id)]


@pytest.mark.parametrize(
    ("sequence", "final", "recorded"),
    [
        ([Status.DELIVERED, Status.SENT], "delivered", ["Delivered"]),
        ([Status.READ, Status.DELIVERED], "read", ["Read"]),
        ([Status.DELIVERED, Status.READ], "read", ["Delivered", "Read"]),
        ([Status.FAILED, Status.SENT, Status.DELIVERED], "failed", ["Failed"]),
        ([Status.UNDELIVERED, Status.FAILED], "failed", ["Failed", "Failed"]),
        ([Status.DELIVERED] * 10, "delivered", ["Delivered"]),
    ],
)
def test_reports_in_any_order_end_in_the_right_status(
    service: ConversaService, sequence: list[Status], final: str, recorded: list[str]
) -> None:
    sent = service.send("sms", TO, {"body": "hello"})
    assert sent.ok and sent.provider_message_id is not None
    for status in sequence:
        # Matched by the provider's id alone, as Meta reports without our id would be.
        service.record_report(report(status, sent.provider_message_id))
    assert service.get_message(sent.message_id).status == final
    assert history(service, sent.message_id) == ["Queued", "Sent", *recorded]


def test_a_report_before_the_sent_is_recorded_is_not_lost(
    service: ConversaService, twilio: FakeTwilio
) -> None:
    sid = "SM" + "ab" * 16
    # Twilio calls back about a message whose Sent this process has not saved yet.
    assert service.record_report(report(Status.DELIVERED, sid)) is ReportOutcome.PARKED
    assert service.reporter.unmatched() == 1

    twilio.answer(
        lambda received: Answer.json(201, {**twilio.message_resource(received.form), "sid": sid})
    )
    sent = service.send("sms", TO, {"body": "hello"})
    assert sent.provider_message_id == sid
    assert sent.status == "delivered"  # applied in the same transaction as Sent
    assert history(service, sent.message_id) == ["Queued", "Sent", "Delivered"]
    assert service.reporter.unmatched() == 0
    # Later reports find it through the index.
    assert service.record_report(report(Status.READ, sid)) is ReportOutcome.APPLIED
    assert service.record_report(report(Status.READ, sid)) is ReportOutcome.UNCHANGED


def test_a_report_naming_our_id_applies_even_before_sent(
    service: ConversaService, twilio: FakeTwilio
) -> None:
    recorded: list[StatusReport] = []

    def deliver_first(received: Received) -> Answer:
        # The status callback overtakes the API's own answer.
        answer = Answer.json(201, twilio.message_resource(received.form))
        message_id = UUID(received.form["StatusCallback"].split("message_id=")[1])
        recorded.append(report(Status.DELIVERED, None, message_id))
        service.record_report(recorded[-1])
        return answer

    twilio.answer(deliver_first)
    sent = service.send("sms", TO, {"body": "hello"})
    assert sent.status == "delivered"
    assert sent.provider_message_id is not None
    assert history(service, sent.message_id) == ["Queued", "Delivered", "Sent"]


def test_a_report_for_an_id_that_never_appears_stays_visible(service: ConversaService) -> None:
    assert service.record_report(report(Status.DELIVERED, "SM" + "0" * 32)) is ReportOutcome.PARKED
    assert service.record_report(report(Status.READ, "SM" + "0" * 32)) is ReportOutcome.PARKED
    assert service.reporter.unmatched() == 2


def test_two_hundred_concurrent_reports_leave_a_consistent_history(
    service: ConversaService,
) -> None:
    sent = service.send("sms", TO, {"body": "hello"})
    statuses = [Status.SENT, Status.DELIVERED, Status.READ] * 66 + [Status.DELIVERED] * 2
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def post(chunk: list[Status]) -> None:
        barrier.wait()
        try:
            for status in chunk:
                service.record_report(report(status, sent.provider_message_id, sent.message_id))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=post, args=(statuses[n::20],)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert service.get_message(sent.message_id).status == "read"
    events = history(service, sent.message_id)
    assert events[:2] == ["Queued", "Sent"]
    assert events[-1] == "Read"
    assert events.count("Read") == 1 and events.count("Delivered") <= 1


def test_reports_that_move_nothing_are_not_parked(service: ConversaService) -> None:
    unknown = "SM" + "1" * 32
    assert service.record_report(report(Status.QUEUED, unknown)) is ReportOutcome.UNCHANGED
    assert service.reporter.unmatched() == 0


def test_a_failed_report_that_beats_the_drivers_answer_is_the_last_event(
    service: ConversaService, twilio: FakeTwilio
) -> None:
    def fail_first(received: Received) -> Answer:
        # The provider reports the message failed before the API call has even answered.
        answer = Answer.json(201, twilio.message_resource(received.form))
        message_id = UUID(received.form["StatusCallback"].split("message_id=")[1])
        service.record_report(report(Status.FAILED, None, message_id, "30008"))
        return answer

    twilio.answer(fail_first)
    sent = service.send("sms", TO, {"body": "hello"})
    assert sent.status == "failed" and sent.provider_message_id is not None
    assert history(service, sent.message_id) == ["Queued", "Failed", "Sent"]

    events, _ = service.feed.read(0, 100)
    assert [type(e) for e in events] == [MessageFailed]
    received: list[LifecycleEvent] = []
    runner = SubscriberRunner(
        Subscription("everything", received.append), service.feed, service.subscriber_store
    )
    while runner.run_once():
        pass
    assert [e.type_name for e in received] == ["message.failed"]
    failed = received[0]
    assert isinstance(failed, MessageFailed) and failed.error is not None
    assert failed.error["code"] == "30008"


def index_history(service: ConversaService, provider_message_id: str) -> list[str]:
    index_id = provider_message_id_for("twilio", provider_message_id)
    return [type(e).__name__ for e in service.app.events.get(index_id)]


def test_parked_reports_expire_after_the_window_and_a_late_send_does_not_take_them(
    backend_url: str, twilio: FakeTwilio
) -> None:
    settings = twilio_settings(backend_url, twilio, parked_report_hours="2")
    migrate(settings)
    clock = Clock()
    start = clock.now
    with bootstrap(settings, clock=clock) as service:
        other_tool = "SM" + "ab" * 16
        assert service.record_report(report(Status.DELIVERED, other_tool)) is ReportOutcome.PARKED
        assert service.record_report(report(Status.READ, other_tool)) is ReportOutcome.PARKED

        clock.now = start + timedelta(hours=2) - timedelta(minutes=5)
        assert service.expire_parked_reports() == 0  # still within the window
        assert service.reporter.parked_counts().parked == 2

        clock.now = start + timedelta(hours=2, minutes=5)
        assert service.expire_parked_reports() == 2
        assert service.expire_parked_reports() == 0  # once
        counts = service.reporter.parked_counts()
        assert (counts.parked, counts.expired) == (0, 2)
        assert service.reporter.unmatched() == 0
        # The history of the index says what happened to them.
        assert index_history(service, other_tool) == [
            "Opened",
            "ReportParked",
            "ReportParked",
            "ReportsExpired",
        ]

        # A report parked now waits its own window.
        fresh = "SM" + "cd" * 16
        assert service.record_report(report(Status.DELIVERED, fresh)) is ReportOutcome.PARKED
        clock.now = datetime.now(UTC) + timedelta(hours=1)
        assert service.expire_parked_reports() == 0
        counts = service.reporter.parked_counts()
        assert (counts.parked, counts.expired) == (1, 2)

        # A send that finally claims the expired provider id does not take their statuses.
        twilio.answer(
            lambda received: Answer.json(
                201, {**twilio.message_resource(received.form), "sid": other_tool}
            )
        )
        sent = service.send("sms", TO, {"body": "hello"})
        assert sent.provider_message_id == other_tool
        assert sent.status == "sent"
        assert history(service, sent.message_id) == ["Queued", "Sent"]
        counts = service.reporter.parked_counts()
        assert (counts.parked, counts.expired) == (1, 2)


def test_the_worker_expires_parked_reports(
    backend_url: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conversa.app.worker.PURGE_EVERY", 1)
    settings = twilio_settings(backend_url, twilio, parked_report_hours="1")
    migrate(settings)
    clock = Clock()
    with bootstrap(settings, clock=clock) as service:
        unknown = "SM" + "ef" * 16
        service.record_report(report(Status.DELIVERED, unknown))
        clock.now += timedelta(hours=1, minutes=1)
        stop = threading.Event()
        thread = Worker(service, dispatch_interval=0.05).start(stop)
        try:
            deadline = time.monotonic() + 20
            while "ReportsExpired" not in index_history(service, unknown):
                assert time.monotonic() < deadline, "the worker never expired the report"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        assert service.reporter.parked_counts().expired == 1
