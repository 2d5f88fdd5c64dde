"""Status reports applied to messages: any order, any number of times, before the send
is recorded, concurrently; on SQLite and on PostgreSQL, with a fake Twilio on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService
from conversa.domain.status import Status
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, Answer, FakeTwilio, Received, running
from tests.support import make_settings

TO = "+15551234567"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def service(backend_url: str, twilio: FakeTwilio) -> Iterator[ConversaService]:
    settings = make_settings(
        backend_url,
        sms_driver="twilio",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        webhook_base_url="https://hooks.example.com",
    )
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
