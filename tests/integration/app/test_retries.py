"""Transient and permanent provider errors, retries, claims and recovery, told as stories
against a fake Twilio on loopback, on SQLite and on PostgreSQL. Time is a hand-driven
clock and the jitter is its ceiling, so every wait is exact."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from eventsourcing.persistence import IntegrityError
from psycopg import sql

from conversa.adapters.providers.templates import TemplateCatalog
from conversa.adapters.providers.twilio import TwilioConfig, TwilioDriver
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.ports import Driver
from conversa.app.service import ConversaService
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.message import ATTEMPT_BY_REQUEST, Message
from conversa.domain.phone import PhoneNumber
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeTwilio,
    FakeWhatsAppCloud,
    meta_error,
    running,
    slow,
    twilio_error,
)
from tests.support import make_settings

TO = "+15551234567"
BODY = "Your one-time code is 947261"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))

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


def twilio_settings(url: str, twilio: FakeTwilio, **extra: str) -> dict[str, str]:
    return {
        "sms_driver": "twilio",
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "twilio_sms_from": "+15550006666",
        "twilio_api_base": twilio.url,
        "webhook_base_url": "https://hooks.example.com",
        "retry_base_seconds": "5",
        "max_retries": "3",
        **extra,
    }


def open_service(
    url: str,
    twilio: FakeTwilio,
    clock: Clock,
    *,
    drivers: dict[Channel, Driver] | None = None,
    **extra: str,
) -> ConversaService:
    settings = make_settings(url, **twilio_settings(url, twilio, **extra))
    migrate(settings)
    return bootstrap(settings, clock=clock, jitter=lambda ceiling: ceiling, drivers=drivers)


def history(service: ConversaService, message_id: UUID) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(message_id)]


def tick(service: ConversaService) -> int:
    """What a worker does in one round: bring the read model up to date, dispatch."""
    service.projector().catch_up()
    return service.dispatcher.dispatch_due()


def test_transient_errors_are_retried_with_growing_waits_until_sent(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answer(SERVICE_UNAVAILABLE, twilio_error(20429), twilio_error(20503))
    with open_service(backend_url, twilio, clock) as service:
        first = service.send("sms", TO, {"body": BODY})
        assert (first.ok, first.status) == (False, "queued")
        assert first.error is not None and first.error["code"] == "twilio_http_503"

        waits = []
        for _ in range(3):
            message: object = service.app.repository.get(first.message_id)
            assert isinstance(message, Message) and message.next_attempt_at is not None
            waits.append((message.next_attempt_at - clock.now).total_seconds())
            clock.advance(waits[-1] - 0.001)
            assert tick(service) == 0  # not due yet
            clock.advance(0.001)
            assert tick(service) == 1
        assert waits == [5.0, 10.0, 20.0]  # 5 s doubling, jitter at its ceiling

        sent = service.get_message(first.message_id)
        assert (sent.status, sent.attempts) == ("sent", 4)
        assert twilio.calls == 4
        assert history(service, first.message_id) == [
            "Queued",
            "Retried",
            "AttemptStarted",
            "Retried",
            "AttemptStarted",
            "Retried",
            "AttemptStarted",
            "Sent",
        ]
        _state, events = service.message_history(first.message_id)
        assert [e["error"]["code"] for e in events if e["type"] == "retried"] == [
            "twilio_http_503",
            "twilio_20429",
            "twilio_20503",
        ]
        assert [e["attempt"] for e in events if e["type"] == "attempt_started"] == [2, 3, 4]
        clock.advance(3600)
        assert tick(service) == 0  # nothing left to do
        assert twilio.calls == 4


def test_a_permanent_error_fails_at_once(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answer(twilio_error(21211))
    with open_service(backend_url, twilio, clock) as service:
        result = service.send("sms", TO, {"body": BODY})
        assert (result.ok, result.status) == (False, "failed")
        assert result.error is not None and result.error["code"] == "twilio_21211"
        assert "+15551234567" not in result.error["message"]
        clock.advance(3600)
        assert tick(service) == 0
        assert twilio.calls == 1
        assert history(service, result.message_id) == ["Queued", "Failed"]


def test_transient_errors_fail_the_message_after_the_retry_limit(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.always(twilio_error(20503))
    with open_service(backend_url, twilio, clock, max_retries="2") as service:
        result = service.send("sms", TO, {"body": BODY})
        for _ in range(5):
            clock.advance(3600)
            tick(service)
        message = service.get_message(result.message_id)
        assert (message.status, message.attempts) == ("failed", 3)
        assert message.error is not None and message.error["code"] == "twilio_20503"
        assert "gave up after 3 attempts" in message.error["message"]
        assert twilio.calls == 3
        assert history(service, result.message_id)[-1] == "Failed"
        assert history(service, result.message_id).count("Retried") == 2


def test_a_timeout_is_retried(backend_url: str, twilio: FakeTwilio, clock: Clock) -> None:
    settings = make_settings(backend_url, **twilio_settings(backend_url, twilio))
    with httpx.Client(timeout=httpx.Timeout(0.3)) as impatient:
        driver = TwilioDriver(TwilioConfig.from_settings(settings), impatient, TemplateCatalog({}))
        twilio.answer(slow(1.0))
        drivers: dict[Channel, Driver] = {Channel.SMS: driver, Channel.WHATSAPP: driver}
        with open_service(backend_url, twilio, clock, drivers=drivers) as service:
            result = service.send("sms", TO, {"body": BODY})
            assert result.status == "queued"
            assert result.error is not None and result.error["code"] == "twilio_timeout"
            clock.advance(5)
            assert tick(service) == 1
            assert service.get_message(result.message_id).status == "sent"


def test_a_send_left_unfinished_by_a_crash_is_recovered_once(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock) as service:
        assert service.send("sms", TO, {"body": "an ordinary send"}).ok
        assert twilio.calls == 1
        # What a process that died between recording Queued and calling Twilio leaves.
        crashed = Message(
            id=uuid4(),
            channel="sms",
            to=PhoneNumber.parse(TO),
            sender=None,
            content=Body(BODY),
            driver="twilio",
            meta={},
            idempotency_key=None,
            fingerprint="f",
            next_attempt_at=clock.now + service.lease,
            nonce=None,
            attempt_by=ATTEMPT_BY_REQUEST,
            reply_to=None,
            quote=None,
            category="transactional",
            consent_override=False,
            scheduled_at=None,
        )
        service.app.save(crashed)
        assert tick(service) == 0  # its first attempt may still be in flight
        clock.advance(service.lease.total_seconds())
        assert tick(service) == 1
        assert tick(service) == 0
        assert service.get_message(crashed.id).status == "sent"
        assert history(service, crashed.id) == ["Queued", "AttemptStarted", "Sent"]
        assert twilio.calls == 2


def test_two_dispatchers_cannot_claim_the_same_attempt(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answer(SERVICE_UNAVAILABLE)
    with open_service(backend_url, twilio, clock) as service:
        result = service.send("sms", TO, {"body": BODY})
        clock.advance(5)
        mine: object = service.app.repository.get(result.message_id)
        theirs: object = service.app.repository.get(result.message_id)
        assert isinstance(mine, Message) and isinstance(theirs, Message)
        assert mine.claim_attempt(clock.now, clock.now + service.lease)
        assert theirs.claim_attempt(clock.now, clock.now + service.lease)
        service.app.save(mine)
        with pytest.raises(IntegrityError):
            service.app.save(theirs)
        # The dispatcher that lost sees the claim and does nothing.
        service.projector().catch_up()
        assert service.dispatcher.dispatch(result.message_id) is False
        assert twilio.calls == 1


def test_without_stored_bodies_a_transient_error_is_still_retried(
    backend_url: str, twilio: FakeTwilio, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    twilio.answer(SERVICE_UNAVAILABLE)
    with (
        caplog.at_level(logging.DEBUG),
        open_service(backend_url, twilio, clock, store_body="false") as service,
    ):
        result = service.send("sms", TO, {"body": BODY})
        assert result.status == "queued" and "body" not in result.message.as_dict()
        assert service.payloads.get(result.message_id) is not None  # waiting for its retry
        clock.advance(5)
        assert tick(service) == 1
        assert service.get_message(result.message_id).status == "sent"
        assert twilio.requests[-1].form["Body"] == BODY  # the retry still had the text
        assert service.payloads.get(result.message_id) is None  # and it is gone now

        service.projector().catch_up()
        row = service.view.get(result.message_id)
        assert row is not None and row.body is None
        stored = service.app.recorder.select_notifications(start=None, limit=1000)
        assert stored and not any(b"947261" in n.state for n in stored)
        assert "947261" not in caplog.text
        assert "947261" not in json.dumps(service.message_history(result.message_id)[1])


def test_without_stored_bodies_a_replay_writes_no_content_anywhere(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    with open_service(backend_url, twilio, clock, store_body="false") as service:
        key = {"idempotency_key": "otp-4711"}
        first = service.send("sms", TO, {"body": BODY}, key)
        assert first.status == "sent"
        assert service.payloads.get(first.message_id) is None  # deleted at its outcome

        # The same key, a text of the same length: the fingerprint (the content's shape)
        # matches, so it is a replay; its text must not be written down.
        other = BODY.replace("947261", "180533")
        replay = service.send("sms", TO, {"body": other}, key)
        assert replay.replayed and replay.message_id == first.message_id
        assert service.payloads.get(first.message_id) is None
        assert service.payloads.purge_expired(clock.now + timedelta(days=365)) == 0
        assert twilio.calls == 1


def test_without_the_message_log_only_waiting_messages_keep_a_row(
    backend_url: str, twilio: FakeTwilio, clock: Clock
) -> None:
    twilio.answer(SERVICE_UNAVAILABLE)
    with open_service(backend_url, twilio, clock, log_messages="false") as service:
        waiting = service.send("sms", TO, {"body": "first"})
        done = service.send("sms", TO, {"body": "second"})
        service.projector().catch_up()
        assert service.view.get(waiting.message_id) is not None
        assert service.view.get(done.message_id) is None
        clock.advance(5)
        assert tick(service) == 1
        service.projector().catch_up()
        assert service.view.all_rows() == []
        assert service.get_message(waiting.message_id).status == "sent"


def test_meta_errors_are_classified_by_their_code(backend_url: str, clock: Clock) -> None:
    """Meta answers HTTP 400 to throttling and to refusals alike: the code decides."""
    with FakeWhatsAppCloud() as meta:
        settings = make_settings(
            backend_url,
            whatsapp_driver="whatsapp_cloud",
            whatsapp_phone_id=WHATSAPP_PHONE_ID,
            whatsapp_token=WHATSAPP_TOKEN,
            whatsapp_api_base=meta.url,
            retry_base_seconds="5",
        )
        migrate(settings)
        with bootstrap(settings, clock=clock, jitter=lambda ceiling: ceiling) as service:
            meta.answer(meta_error(130429), meta_error(131056))
            throttled = service.send("whatsapp", TO, {"body": BODY})
            assert throttled.status == "queued"
            for wait in (5, 10):
                clock.advance(wait)
                assert tick(service) == 1
            done = service.get_message(throttled.message_id)
            assert (done.status, done.attempts) == ("sent", 3)
            assert done.provider_message_id is not None
            assert done.provider_message_id.startswith("wamid.")

            meta.answer(meta_error(131026))
            refused = service.send("whatsapp", TO, {"body": BODY})
            assert refused.status == "failed"
            assert refused.error is not None and refused.error["code"] == "whatsapp_cloud_131026"
            clock.advance(3600)
            assert tick(service) == 0
            assert meta.calls == 4
            assert history(service, refused.message_id) == ["Queued", "Failed"]


def corrupt_payload(service: ConversaService, message_id: UUID) -> None:
    """What a bad restore or a hand edit leaves in conversa_payloads: not a content."""
    payloads: Any = service.payloads
    with payloads.datastore.transaction(commit=True) as cursor:
        if service.backend.kind == "postgresql":
            cursor.execute(
                sql.SQL("UPDATE {} SET content = '{{}}'::jsonb WHERE message_id = %s").format(
                    payloads.table
                ),
                (message_id,),
            )
        else:
            cursor.execute(
                "UPDATE conversa_payloads SET content = '{}' WHERE message_id = ?",
                (str(message_id),),
            )


def test_a_message_that_cannot_be_dispatched_does_not_stop_the_others(
    backend_url: str, twilio: FakeTwilio, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    twilio.always(SERVICE_UNAVAILABLE)
    with open_service(backend_url, twilio, clock, store_body="false") as service:
        waiting = []
        for n in range(3):
            waiting.append(service.send("sms", TO, {"body": f"n{n}"}).message_id)
            clock.advance(0.01)  # the broken one is due first
        corrupt_payload(service, waiting[0])
        twilio.always(None)
        clock.advance(5)

        assert tick(service) == 2  # the two others went out, in the same round
        assert [service.get_message(i).status for i in waiting] == ["queued", "sent", "sent"]
        assert f"dispatching message_id={waiting[0]} failed" in caplog.text
        assert twilio.calls == 3 + 2

        # Its claim lapses; it is tried again later, and still nothing else is held up.
        later = service.send("sms", TO, {"body": "later"})
        assert later.status == "sent"
        clock.advance(service.lease.total_seconds() + 1)
        assert tick(service) == 0
        assert twilio.calls == 3 + 2 + 1
