"""A message's events told as the console's timeline."""

from __future__ import annotations

from conversa.adapters.console.formats import masked, offset
from conversa.adapters.console.timeline import timeline

T0 = "2026-03-01T10:00:00.000000Z"


def at(seconds: float) -> str:
    return f"2026-03-01T10:{int(seconds) // 60:02d}:{seconds % 60:09.6f}Z"


def test_retries_failures_and_their_meaning_with_times_from_the_first_event() -> None:
    entries = timeline(
        [
            {"type": "queued", "occurred_at": T0, "channel": "sms", "driver": "twilio"},
            {"type": "attempt_started", "occurred_at": at(0.01), "attempt": 1, "driver": "twilio"},
            {
                "type": "retried",
                "occurred_at": at(0.5),
                "attempt": 1,
                "driver": "twilio",
                "error": {"code": "20429", "message": "Too many requests"},
                "next_attempt_at": at(5.5),
            },
            {
                "type": "failed",
                "occurred_at": at(65),
                "status": "undelivered",
                "permanent": True,
                "source": "provider_report",
                "error": {"code": "30003", "message": "Unreachable destination handset"},
            },
        ]
    )
    assert [e.kind for e in entries] == ["queued", "attempt_started", "retried", "failed"]
    assert [offset(e.offset) for e in entries] == ["+0.000s", "+0.010s", "+0.500s", "+1m05s"]
    assert entries[2].title == "Attempt 1 failed; retry in 5.0s"
    assert entries[2].driver == "twilio" and entries[2].error_code == "20429"
    assert entries[2].meaning is None  # not a code the console explains
    assert entries[3].title == "Failed permanently (undelivered)"
    assert entries[3].meaning == "The handset is unreachable (switched off or out of coverage)."
    assert entries[3].details == ["from a provider's status report"]


def test_reports_out_of_order_and_a_late_driver_answer_are_pointed_out() -> None:
    entries = timeline(
        [
            {"type": "queued", "occurred_at": T0, "channel": "whatsapp", "driver": "log"},
            {"type": "delivered", "occurred_at": at(1), "source": "provider_report"},
            {
                "type": "sent",
                "occurred_at": at(2),
                "source": "driver",
                "driver": "log",
                "provider_message_id": "wamid.1",
            },
            {"type": "read", "occurred_at": at(3), "source": "provider_report"},
        ]
    )
    notes = [e.note for e in entries]
    assert notes[1] == "arrived before the driver's answer was recorded (out of order)"
    assert notes[2] == "late: the driver's answer came after the provider reported delivered"
    assert notes[3] is None
    assert "provider id wamid.1" in entries[2].details


def test_fallback_links_lead_to_the_other_message() -> None:
    entries = timeline(
        [
            {"type": "queued", "occurred_at": T0, "channel": "whatsapp", "driver": "log"},
            {
                "type": "fell_back",
                "occurred_at": at(30),
                "fallback_message_id": "0b9c",
                "reason": "not delivered in time",
            },
        ]
    )
    assert entries[1].title == "Fell back: not delivered in time"
    assert entries[1].link == ("0b9c", "the fallback message")


def test_numbers_are_masked_whatever_they_look_like() -> None:
    assert masked("+447700900123") == "+44********23"
    assert masked("whatsapp:+447700900123").endswith("23")
    assert "7700900" not in masked("whatsapp:+447700900123")
    assert masked("12") == "**"
    assert masked(None) == ""
