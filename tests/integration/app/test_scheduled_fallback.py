"""A scheduled WhatsApp message with a fallback: the fallback's timer starts at the
scheduled time, and a cancelled message never falls back. Against a fake Meta and a fake
Twilio on loopback, on SQLite and on PostgreSQL, with a hand-driven clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from conversa.domain.status import Status
from tests.fakes.providers import FakeTwilio, FakeWhatsAppCloud
from tests.integration.app.test_fallback import (
    FALLBACK,
    TO,
    clock,
    meta,
    open_service,
    templates,
    twilio,
)
from tests.integration.app.test_retries import Clock

__all__ = ["clock", "meta", "templates", "twilio"]  # the fixtures this module uses
AFTER = timedelta(seconds=600)  # FALLBACK's after_seconds


def test_a_scheduled_messages_fallback_counts_from_its_time_and_a_cancelled_one_never_falls_back(
    backend_url: str,
    twilio: FakeTwilio,
    meta: FakeWhatsAppCloud,
    clock: Clock,
    templates: Path,
) -> None:
    at = clock.now + timedelta(hours=1)
    with open_service(backend_url, twilio, meta, clock, templates) as service:
        kept = service.send(
            "whatsapp", TO, {"body": "Doors open at 9"}, {"fallback": FALLBACK, "send_at": at}
        )
        dropped = service.send(
            "whatsapp", TO, {"body": "Doors open at 10"}, {"fallback": FALLBACK, "send_at": at}
        )
        fallback = service._get(kept.message_id).fallback
        assert fallback is not None and FALLBACK["after_seconds"] == AFTER.seconds
        _channel, due_at, _text = fallback
        assert due_at == at + AFTER
        assert service.cancel(dropped.message_id).status == "cancelled"

        clock.now = at
        service.projector().catch_up()
        assert service.dispatcher.dispatch_due() == 1  # the one not cancelled
        assert meta.calls == 1
        clock.now = at + AFTER - timedelta(seconds=1)
        assert service.run_fallbacks() == 0
        clock.advance(1)
        # Sent but never delivered: its SMS goes; the cancelled one's never does.
        assert service.run_fallbacks() == 1
        assert service.run_fallbacks() == 0
        assert len(twilio.sent) == 1
        assert twilio.requests[-1].form["Body"] == "Doors open at 9"
        assert service._get(dropped.message_id).status is Status.CANCELLED
        assert service._get(dropped.message_id).fallback_message_id is None
