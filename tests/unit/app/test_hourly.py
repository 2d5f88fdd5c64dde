"""The hourly counters count status changes, once each, in the hour they happened; the
median time to delivered is read off their buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from conversa.app.hourly import (
    count_changes,
    hour_of,
    hour_start,
    latency_bucket,
    median_seconds,
)
from conversa.app.overview import driver_stats, failure_reasons, hour_totals
from conversa.app.projection import EventFacts, HourKey

T0 = datetime(2026, 12, 6, 9, 59, 58, tzinfo=UTC)
MID = uuid4()


def facts(kind: str, version: int, at: datetime, **fields: Any) -> EventFacts:
    return EventFacts(kind, MID, version, at, fields)


def queued(at: datetime = T0, driver: str = "twilio") -> EventFacts:
    return facts("queued", 1, at, channel="sms", driver=driver)


def test_a_delivered_message_counts_sent_and_delivered_in_their_hours() -> None:
    counts: dict[HourKey, int] = {}
    events = [
        queued(),
        facts("sent", 2, T0 + timedelta(seconds=1), driver="twilio", source="driver"),
        facts("delivered", 3, T0 + timedelta(seconds=4)),  # the next hour
        facts("delivered", 4, T0 + timedelta(seconds=5)),  # nothing moves: not counted
        facts("read", 5, T0 + timedelta(seconds=9)),
    ]
    count_changes(None, events, counts)
    h = hour_of(T0)
    assert counts == {
        (h, "queued", "sms", "twilio", ""): 1,
        (h, "sent", "sms", "twilio", ""): 1,
        (h + 1, "delivered", "sms", "twilio", ""): 1,
        (h + 1, "latency", "sms", "twilio", "5"): 1,
        (h + 1, "read", "sms", "twilio", ""): 1,
    }


def test_a_report_before_sent_and_a_failover_member_are_counted_once() -> None:
    # The early report is the queued driver's (which member sent it is not known yet).
    counts: dict[HourKey, int] = {}
    events = [
        queued(driver="twilio"),
        facts("delivered", 2, T0),  # the report overtook the Sent
        facts("sent", 3, T0, driver="vonage", source="driver"),
        facts("failed", 4, T0, code="30003", status="undelivered", driver=None),  # after: final
        facts("failed", 5, T0, code="x", status="failed", driver=None),  # final to final
    ]
    count_changes(None, events, counts)
    kinds = sorted((kind, driver, detail) for (_h, kind, _c, driver, detail) in counts)
    assert kinds == [
        ("delivered", "twilio", ""),
        ("failed", "vonage", "30003"),  # the Sent named the member that sent it
        ("latency", "twilio", "1"),
        ("queued", "twilio", ""),
        ("sent", "twilio", ""),
    ]


def test_without_the_message_log_nothing_after_leaving_queued_is_counted() -> None:
    counts: dict[HourKey, int] = {}
    events = [
        queued(),
        facts("failed", 2, T0, code="21211", status="failed", driver="twilio"),
        facts("delivered", 3, T0),
    ]
    count_changes(None, events, counts, keep_finished=False)
    assert sorted(k[1] for k in counts) == ["failed", "queued"]


def test_latency_buckets_and_their_median() -> None:
    assert [latency_bucket(s) for s in (0, 1, 1.01, 7, 90000)] == ["1", "1", "2", "10", "inf"]
    assert median_seconds({}) is None
    # 10 in (0, 1], 10 in (1, 2]: the median is the first bucket's top.
    assert median_seconds({"1": 10, "2": 10}) == 1.0
    # 4 in (2, 5]: the median (rank 2) is halfway into it.
    assert median_seconds({"5": 4}) == 3.5
    assert median_seconds({"inf": 3}) == 86400


def test_the_overview_sums_hours_drivers_and_reasons() -> None:
    h = hour_of(T0)
    counts: dict[HourKey, int] = {
        (h - 30, "sent", "sms", "twilio", ""): 100,  # outside the window: not given
        (h - 1, "sent", "sms", "twilio", ""): 5,
        (h, "sent", "whatsapp", "twilio", ""): 3,
        (h, "delivered", "sms", "twilio", ""): 6,
        (h, "latency", "sms", "twilio", "2"): 6,
        (h, "failed", "sms", "twilio", "30003"): 1,
        (h, "failed", "sms", "vonage", "vonage_6"): 2,
        (h, "failed", "sms", "vonage", "30003"): 2,
    }
    window = {k: n for k, n in counts.items() if k[0] >= h - 23}
    hours = hour_totals(window, h - 23, h)
    assert len(hours) == 24 and hours[-1].start == hour_start(h) and hours[0].sent == 0
    assert (hours[-2].sent, hours[-1].sent, hours[-1].delivered, hours[-1].failed) == (5, 3, 6, 5)
    twilio, vonage = driver_stats(window)
    assert (twilio.driver, twilio.sent, twilio.delivered, twilio.failed) == ("twilio", 8, 6, 1)
    assert twilio.delivery_rate == 6 / 7 and twilio.median_seconds_to_delivered == 1.5
    assert (vonage.delivery_rate, vonage.median_seconds_to_delivered) == (0.0, None)
    assert [(r.code, r.count) for r in failure_reasons(window)] == [("30003", 3), ("vonage_6", 2)]


def test_cached_findings_answer_at_once_and_refresh_in_the_background() -> None:
    import threading

    from conversa.app.diagnosis import Check
    from conversa.app.overview import CachedFindings

    now = [0.0]
    calls: list[int] = []
    release = threading.Event()

    def compute(_service: object) -> list[Check]:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return [Check("n", True, str(len(calls)))]

    class Service:  # any weakly referenceable object stands for the service
        pass

    service = Service()
    findings = CachedFindings(compute, fresh=30, clock=lambda: now[0])
    assert findings(service)[0].detail == "1"  # type: ignore[arg-type]
    now[0] = 10
    assert findings(service)[0].detail == "1" and len(calls) == 1  # type: ignore[arg-type]
    now[0] = 31
    # Stale: the last answer at once, one refresh started (not two).
    assert findings(service)[0].detail == "1"  # type: ignore[arg-type]
    assert findings(service)[0].detail == "1"  # type: ignore[arg-type]
    release.set()
    for _ in range(100):
        if findings(service)[0].detail == "2":  # type: ignore[arg-type]
            break
        threading.Event().wait(0.02)
    assert findings(service)[0].detail == "2" and len(calls) == 2  # type: ignore[arg-type]
