"""Failover by health, told as stories against a fake Twilio and a fake Vonage on loopback,
on SQLite and on PostgreSQL, with a hand-driven clock for the service and the breakers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, configured_drivers, migrate
from conversa.app.failover import BreakerState, FailoverDriver, breaker_statuses
from conversa.app.service import ConversaService
from conversa.domain.channel import Channel
from conversa.domain.message import Message
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeTwilio,
    running,
    twilio_error,
)
from tests.fakes.regional import VONAGE_KEY, VONAGE_SECRET, FakeVonage
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
def clock() -> Clock:
    return Clock()


@contextmanager
def open_service(
    url: str, twilio: FakeTwilio, vonage: FakeVonage, clock: Clock
) -> Iterator[ConversaService]:
    settings = make_settings(
        url,
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
        max_retries="3",
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


def tick(service: ConversaService) -> int:
    service.projector().catch_up()
    return service.dispatcher.dispatch_due()


def drivers_of(service: ConversaService, message_id: UUID) -> list[tuple[str, str | None]]:
    """Each attempt event of a message and the driver it names."""
    _state, events = service.message_history(message_id)
    return [
        (e["type"], e.get("driver"))
        for e in events
        if e["type"] in ("attempt_started", "retried", "sent", "failed")
    ]


def test_an_outage_opens_the_breaker_and_a_probe_brings_traffic_back(
    backend_url: str, twilio: FakeTwilio, vonage: FakeVonage, clock: Clock
) -> None:
    twilio.always(SERVICE_UNAVAILABLE)
    with open_service(backend_url, twilio, vonage, clock) as service:
        sms = service.drivers[Channel.SMS]
        assert isinstance(sms, FailoverDriver) and sms.names == ["twilio", "vonage"]
        failed_over = []
        for _ in range(5):
            result = service.send("sms", TO, {"body": "Your code is 8351"})
            assert result.status == "queued"  # Twilio said 503
            failed_over.append(result.message_id)
            message: object = service.app.repository.get(result.message_id)
            assert isinstance(message, Message)
            assert message.next_attempt_at == clock.now  # no backoff: Vonage can take it
        assert twilio.calls == 5
        statuses = {s.driver: s for s in breaker_statuses([sms])}
        assert statuses["twilio"].state is BreakerState.OPEN
        assert statuses["twilio"].error_rate == 1.0
        assert statuses["vonage"].state is BreakerState.CLOSED

        # The retries go to Vonage at once, without the 60 s backoff.
        assert tick(service) == 5
        for message_id in failed_over:
            assert service.get_message(message_id).status == "sent"
            assert service.get_message(message_id).driver == "vonage"
            assert drivers_of(service, message_id) == [
                ("retried", "twilio"),
                ("attempt_started", "vonage"),
                ("sent", "vonage"),
            ]
        # While the breaker is open, new messages go straight to Vonage.
        direct = service.send("sms", TO, {"body": "Your code is 8352"})
        assert direct.ok and twilio.calls == 5
        assert drivers_of(service, direct.message_id) == [("sent", "vonage")]

        # After the cooldown one probe goes to Twilio, which is back: traffic returns.
        twilio.always(None)
        clock.advance(30)
        probe = service.send("sms", TO, {"body": "Your code is 8353"})
        assert probe.ok and drivers_of(service, probe.message_id) == [("sent", "twilio")]
        after = service.send("sms", TO, {"body": "Your code is 8354"})
        assert drivers_of(service, after.message_id) == [("sent", "twilio")]
        assert breaker_statuses([sms])[0].state is BreakerState.CLOSED

        # No message was sent by both providers.
        vonage_ids = Counter(s["form"]["client-ref"] for s in vonage.sent)
        twilio_ids = Counter(
            parse_qs(urlsplit(r.form["StatusCallback"]).query)["message_id"][0]
            for r in twilio.requests[-2:]
        )
        assert len(twilio.sent) == 2
        assert set(vonage_ids) | set(twilio_ids) == {
            str(i) for i in [*failed_over, direct.message_id, probe.message_id, after.message_id]
        }
        assert not set(vonage_ids) & set(twilio_ids)
        assert max([*vonage_ids.values(), *twilio_ids.values()]) == 1


def test_a_failed_probe_opens_the_breaker_again(
    backend_url: str, twilio: FakeTwilio, vonage: FakeVonage, clock: Clock
) -> None:
    twilio.always(twilio_error(20503))
    with open_service(backend_url, twilio, vonage, clock) as service:
        for _ in range(5):
            service.send("sms", TO, {"body": "hi"})
        clock.advance(31)
        probe = service.send("sms", TO, {"body": "hi"})
        assert probe.status == "queued" and twilio.calls == 6
        nxt = service.send("sms", TO, {"body": "hi"})
        assert nxt.ok and twilio.calls == 6  # open again for another cooldown
        assert drivers_of(service, nxt.message_id) == [("sent", "vonage")]


def test_recipient_errors_never_fail_over(
    backend_url: str, twilio: FakeTwilio, vonage: FakeVonage, clock: Clock
) -> None:
    twilio.answer(twilio_error(21211), twilio_error(21408))
    with open_service(backend_url, twilio, vonage, clock) as service:
        invalid = service.send("sms", TO, {"body": "hi"})
        assert invalid.status == "failed"
        assert drivers_of(service, invalid.message_id) == [("failed", "twilio")]
        # 21408 (region not enabled) is about our account's route: Vonage may take it.
        region = service.send("sms", TO, {"body": "hi"})
        assert region.status == "queued"
        assert tick(service) == 1
        assert drivers_of(service, region.message_id) == [
            ("retried", "twilio"),
            ("attempt_started", "vonage"),
            ("sent", "vonage"),
        ]
        assert vonage.calls == 1


def test_two_workers_during_an_outage_send_each_message_once(
    backend_url: str, twilio: FakeTwilio, vonage: FakeVonage, clock: Clock
) -> None:
    twilio.always(SERVICE_UNAVAILABLE)
    with (
        open_service(backend_url, twilio, vonage, clock) as one,
        open_service(backend_url, twilio, vonage, clock) as two,
    ):
        ids = [one.send("sms", TO, {"body": f"message {i}"}).message_id for i in range(12)]
        one.projector().catch_up()
        barrier = threading.Barrier(2)
        # One projector at a time, as the workers' lock on the projection makes it: two
        # projectors at once fail on purpose (ProjectionOutOfSequence). The dispatchers,
        # what this test is about, race freely.
        projecting = threading.Lock()

        def work(service: ConversaService) -> None:
            barrier.wait()
            for _ in range(5):
                with projecting:
                    service.projector().catch_up()
                service.dispatcher.dispatch_due()

        threads = [threading.Thread(target=work, args=(s,)) for s in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert all(one.get_message(i).status == "sent" for i in ids)
        accepted = Counter(s["form"]["client-ref"] for s in vonage.sent)
        assert accepted == Counter({str(i): 1 for i in ids})
        assert twilio.sent == []
