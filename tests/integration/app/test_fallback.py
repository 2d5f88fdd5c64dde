"""WhatsApp-to-SMS fallback, told as stories against a fake Meta and a fake Twilio on
loopback, on SQLite and on PostgreSQL, with a hand-driven clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import StatusReport
from conversa.app.service import ConversaService
from conversa.domain.errors import InvalidRequest
from conversa.domain.status import Status
from tests.fakes.providers import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeTwilio,
    FakeWhatsAppCloud,
    meta_error,
    running,
)
from tests.integration.app.test_retries import Clock
from tests.support import make_settings

TO = "+15551234567"
FALLBACK = {"channel": "sms", "after_seconds": 600}
TEMPLATES = """
[order_shipped]
whatsapp_cloud = { name = "order_shipped", language = "en_US" }
sms = { text = "Your order {1} has shipped" }
[welcome]
whatsapp_cloud = { name = "welcome", language = "en_US" }
"""


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def meta() -> Iterator[FakeWhatsAppCloud]:
    yield from running(FakeWhatsAppCloud())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    path = tmp_path / "templates.toml"
    path.write_text(TEMPLATES)
    return path


@contextmanager
def open_service(
    url: str, twilio: FakeTwilio, meta: FakeWhatsAppCloud, clock: Clock, templates: Path
) -> Iterator[ConversaService]:
    settings = make_settings(
        url,
        sms_driver="twilio",
        whatsapp_driver="whatsapp_cloud",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        whatsapp_phone_id=WHATSAPP_PHONE_ID,
        whatsapp_token=WHATSAPP_TOKEN,
        whatsapp_api_base=meta.url,
        templates_file=str(templates),
    )
    migrate(settings)
    with bootstrap(settings, clock=clock, jitter=lambda ceiling: ceiling) as service:
        yield service


def resource(service: ConversaService, message_id: UUID) -> dict[str, object]:
    state, _events = service.message_history(message_id)
    return state.as_dict()


def test_a_whatsapp_message_not_on_whatsapp_falls_back_to_one_linked_sms(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    meta.answer(meta_error(131026))
    with (
        open_service(backend_url, twilio, meta, clock, templates) as one,
        open_service(backend_url, twilio, meta, clock, templates) as two,
    ):
        result = one.send(
            "whatsapp", TO, {"body": "Your code is 8351"}, {"fallback": FALLBACK, "meta": {"a": 1}}
        )
        assert result.status == "failed"
        assert result.error is not None and result.error["code"] == "whatsapp_cloud_131026"
        # Both workers look, twice: one SMS in all.
        assert one.run_fallbacks() + two.run_fallbacks() == 1
        assert one.run_fallbacks() + two.run_fallbacks() == 0
        assert len(twilio.sent) == 1
        assert twilio.requests[-1].form["Body"] == "Your code is 8351"
        original = resource(one, result.message_id)
        sms_id = UUID(str(original["fallback_message_id"]))
        sms = resource(one, sms_id)
        assert sms["fallback_of"] == str(result.message_id)
        assert (sms["channel"], sms["to"], sms["status"], sms["meta"]) == (
            "sms",
            TO,
            "sent",
            {"a": 1},
        )
        _state, events = one.message_history(result.message_id)
        assert [e["type"] for e in events] == [
            "queued",
            "fallback_requested",
            "failed",
            "fell_back",
        ]
        assert events[-1]["reason"] == "failed: whatsapp_cloud_131026"


def test_a_delivered_message_does_not_fall_back(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    with open_service(backend_url, twilio, meta, clock, templates) as service:
        result = service.send("whatsapp", TO, {"body": "hi"}, {"fallback": FALLBACK})
        assert result.ok
        service.record_report(
            StatusReport(
                provider="whatsapp_cloud",
                provider_message_id=result.provider_message_id,
                message_id=result.message_id,
                status=Status.DELIVERED,
                raw_status="delivered",
            )
        )
        clock.advance(601)
        assert service.run_fallbacks() == 0
        assert twilio.calls == 0
        assert "fallback_message_id" not in resource(service, result.message_id)


def test_the_timer_falls_back_after_a_restart_with_the_templates_sms_text(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    with open_service(backend_url, twilio, meta, clock, templates) as before:
        result = before.send(
            "whatsapp",
            TO,
            {"template": {"name": "order_shipped", "variables": ["1Z999"]}},
            {"fallback": FALLBACK},
        )
        assert result.ok
        clock.advance(599)
        assert before.run_fallbacks() == 0
    clock.advance(1)
    with open_service(backend_url, twilio, meta, clock, templates) as after:  # a new worker
        assert after.run_fallbacks() == 1
        assert after.run_fallbacks() == 0
    assert len(twilio.sent) == 1
    assert twilio.requests[-1].form["Body"] == "Your order 1Z999 has shipped"
    with open_service(backend_url, twilio, meta, clock, templates) as again:
        assert again.run_fallbacks() == 0
        _state, events = again.message_history(result.message_id)
        assert events[-1]["type"] == "fell_back"
        assert events[-1]["reason"] == "not delivered in time"


def test_a_fallback_that_could_not_be_sent_is_refused_at_send_time(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    cases: list[tuple[str, dict[str, object], object, str]] = [
        ("whatsapp", {"template": {"name": "welcome"}}, FALLBACK, "fallback"),
        ("sms", {"body": "hi"}, FALLBACK, "fallback"),
        ("whatsapp", {"body": "hi"}, {"channel": "email", "after_seconds": 5}, "fallback.channel"),
        (
            "whatsapp",
            {"body": "hi"},
            {"channel": "sms", "after_seconds": 0},
            "fallback.after_seconds",
        ),
        (
            "whatsapp",
            {"body": "hi"},
            {"channel": "sms", "after_seconds": "5"},
            "fallback.after_seconds",
        ),
        ("whatsapp", {"body": "hi"}, {"channel": "sms", "after": 5}, "fallback.after"),
        ("whatsapp", {"body": "hi"}, "sms", "fallback"),
    ]
    with open_service(backend_url, twilio, meta, clock, templates) as service:
        for channel, payload, fallback, field in cases:
            with pytest.raises(InvalidRequest) as refused:
                service.send(channel, TO, payload, {"fallback": fallback})
            assert refused.value.field == field, (payload, fallback)
        assert meta.calls == twilio.calls == 0
        assert not service.app.recorder.max_notification_id()  # nothing recorded


def test_a_failure_reported_while_no_worker_ran_falls_back_at_its_start(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    with open_service(backend_url, twilio, meta, clock, templates) as service:
        result = service.send("whatsapp", TO, {"body": "hi"}, {"fallback": FALLBACK})
        assert result.ok
        service.record_report(
            StatusReport(
                provider="whatsapp_cloud",
                provider_message_id=result.provider_message_id,
                message_id=None,
                status=Status.FAILED,
                raw_status="failed",
                error_code="131026",
                error_message="Message undeliverable",
            )
        )
    with open_service(backend_url, twilio, meta, clock, templates) as worker:
        assert worker.run_fallbacks() == 1  # long before the 600 s are up
        _state, events = worker.message_history(result.message_id)
        assert events[-1]["reason"] == "failed: 131026"
    assert len(twilio.sent) == 1


def test_a_queued_whatsapp_message_with_a_fallback_is_sent_by_the_drain_and_falls_back(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    # Asynchronous and batch sends take the fallback too; such a message is recorded with
    # more than its Queued, which the drain must still claim at once.
    meta.answer(meta_error(131026))
    with open_service(backend_url, twilio, meta, clock, templates) as service:
        queued = service.queue(
            "whatsapp", TO, {"body": "Your code is 8351"}, {"fallback": FALLBACK}
        )
        assert queued.status == "queued"
        (refused,) = service.send_batch(
            [{"channel": "sms", "to": TO, "body": "x", "fallback": FALLBACK}]
        )
        assert isinstance(refused.error, InvalidRequest) and refused.error.field == "fallback"
        with service.running():
            pass  # leaving waits until the drain has attempted what was queued
        assert len(meta.requests) == 1
        service.run_fallbacks()
        assert service.run_fallbacks() == 0
        original = resource(service, queued.message_id)
        assert original["status"] == "failed"
        sms = resource(service, UUID(str(original["fallback_message_id"])))
        assert (sms["fallback_of"], sms["channel"], sms["status"]) == (
            str(queued.message_id),
            "sms",
            "sent",
        )
        assert len(twilio.sent) == 1
