"""The console's overview, told as a story against a fake Twilio and a fake Vonage on
loopback, on SQLite and PostgreSQL: an outage on Twilio moves traffic to Vonage, reports
come back (one twice), some messages fail; the overview's hourly sums, per-driver figures,
failure reasons, breakers, projection lag and findings say so, and a rebuild of the read
model gives the same hourly counters. Then the hourly counters of a random mix of events
followed live in random batches equal a rebuild's, with and without the message log."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, configured_drivers, migrate
from conversa.app.failover import BreakerState
from conversa.app.overview import overview
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService
from conversa.domain.status import Status
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeTwilio,
    running,
)
from tests.fakes.regional import VONAGE_KEY, VONAGE_SECRET, FakeVonage, vonage_error
from tests.integration.app.test_read_model_counters import random_messages, random_step
from tests.integration.app.test_retries import Clock
from tests.support import make_settings

TO = "+15551234567"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def vonage() -> Iterator[FakeVonage]:
    yield from running(FakeVonage())


@pytest.fixture
def failover_service(
    backend_url: str, twilio: FakeTwilio, vonage: FakeVonage
) -> Iterator[ConversaService]:
    # Events carry the wall clock's time, so the service's clock starts there too.
    clock = Clock(datetime.now(UTC))
    settings = make_settings(
        backend_url,
        sms_driver="twilio,vonage",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        vonage_api_key=VONAGE_KEY,
        vonage_api_secret=VONAGE_SECRET,
        vonage_sms_from="Conversa",
        vonage_api_base=vonage.url,
        webhook_base_url="https://hooks.example.com",
        retry_base_seconds="60",
    )
    migrate(settings)
    configured = configured_drivers(settings, breaker_clock=lambda: clock.now.timestamp())
    try:
        with bootstrap(
            settings, clock=clock, jitter=lambda ceiling: ceiling, drivers=configured.drivers
        ) as service:
            yield service
    finally:
        configured.close()


def report(
    service: ConversaService, message_id: UUID, status: Status, code: str | None = None
) -> ReportOutcome:
    return service.record_report(
        StatusReport(
            provider="vonage",
            provider_message_id=None,
            message_id=message_id,
            status=status,
            raw_status=status.value,
            error_code=code,
        )
    )


def test_an_outage_and_its_reports_show_on_the_overview(
    failover_service: ConversaService, twilio: FakeTwilio, vonage: FakeVonage
) -> None:
    service = failover_service
    twilio.always(SERVICE_UNAVAILABLE)
    ids = [service.send("sms", TO, {"body": f"code {n}"}).message_id for n in range(5)]
    # Twilio's five 503s open its breaker; the retries go to Vonage at once.
    service.projector().catch_up()
    assert service.dispatcher.dispatch_due() == 5
    ids += [service.send("sms", TO, {"body": "straight to vonage"}).message_id for _ in range(2)]
    vonage.answer(vonage_error(6, "Anti-spam rejection"))
    refused = service.send("sms", TO, {"body": "spam?"})
    assert refused.status == "failed"
    ids.append(refused.message_id)
    # Reports: four delivered (one of them twice, one read), one undelivered.
    for message_id in ids[:4]:
        assert report(service, message_id, Status.DELIVERED) is ReportOutcome.APPLIED
    assert report(service, ids[0], Status.DELIVERED) is ReportOutcome.UNCHANGED
    assert report(service, ids[1], Status.READ) is ReportOutcome.APPLIED
    assert report(service, ids[4], Status.UNDELIVERED, "30003") is ReportOutcome.APPLIED
    service.projector().catch_up()

    seen = overview(service)

    messages = [service.get_message(i) for i in ids]
    statuses = Counter(m.status for m in messages)
    assert statuses == {"delivered": 3, "read": 1, "undelivered": 1, "sent": 2, "failed": 1}
    # Every message that reached a provider went through Vonage (the refused one names
    # the list's planned driver; its Failed event names Vonage, which the counters read).
    assert {m.driver for m in messages[:-1]} == {"vonage"}
    assert len(seen.hours) == 24
    assert seen.hours[-1].start <= service.clock() < seen.hours[-1].start + timedelta(hours=1)
    totals = seen.totals
    assert (totals.queued, totals.sent, totals.delivered, totals.read, totals.failed) == (
        8,
        7,  # every message but the refused one reached a provider
        4,
        1,
        2,
    )
    (vonage_stats,) = seen.drivers
    assert vonage_stats.driver == "vonage"
    assert (vonage_stats.sent, vonage_stats.delivered, vonage_stats.failed) == (7, 4, 2)
    assert vonage_stats.delivery_rate == pytest.approx(4 / 6)
    # Delivered within a second of being queued: the median lies in the first bucket.
    median = vonage_stats.median_seconds_to_delivered
    assert median is not None and 0 < median <= 1
    refused_code = messages[-1].error
    assert refused_code is not None
    assert sorted((r.code, r.count) for r in seen.failure_reasons) == sorted(
        [("30003", 1), (refused_code["code"], 1)]
    )
    breakers = {b.driver: b.state for b in seen.breakers}
    assert breakers == {"twilio": BreakerState.OPEN, "vonage": BreakerState.CLOSED}
    assert seen.projection.lag == 0 and seen.projection.position == seen.projection.head > 0
    assert seen.dead_letters == []
    findings = {c.name: c for c in seen.findings}
    assert findings["database"].ok and findings["projection"].ok
    assert "sms failover" in findings

    # A rebuild counts the same, from the events alone.
    before = service.view.hourly(0)
    service.projector().rebuild()
    assert service.view.hourly(0) == before
    assert overview(service).totals == totals


@pytest.mark.parametrize("keep_finished", [True, False])
def test_hourly_counters_followed_live_equal_a_rebuild(
    backend_url: str, keep_finished: bool
) -> None:
    rng = random.Random(1414)
    settings = make_settings(backend_url, log_messages="true" if keep_finished else "false")
    migrate(settings)
    with bootstrap(settings) as service:
        messages = random_messages(rng, 40)
        service.app.save(*messages)
        for _ in range(6):
            for message in rng.sample(messages, 15):
                for _ in range(rng.randint(1, 3)):
                    random_step(rng, message)
            service.app.save(*messages)
            projector = service.projector(batch_size=rng.randint(3, 40))
            projector.catch_up()
        live = service.view.hourly(0)
        assert sum(n for (_h, kind, *_), n in live.items() if kind == "queued") == 40
        service.projector().rebuild()
        assert service.view.hourly(0) == live
