"""The console's overview: the last 24 hours at a glance, and what needs an operator.

Everything here is read from small tables, never by scanning ``conversa_messages``:
the hourly counters the projection keeps (:mod:`conversa.app.hourly`, a range of their
primary key), the projection's position and the event store's head (two index lookups),
the dead letters, the breakers (in memory) and ``diagnose``'s checks of the open service.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from conversa.app.dead_letters import dead_letters
from conversa.app.diagnosis import Check, service_checks
from conversa.app.failover import BreakerStatus, breaker_statuses
from conversa.app.hourly import (
    DELIVERED,
    FAILED,
    LATENCY,
    QUEUED,
    READ,
    RECEIVED,
    SENT,
    hour_of,
    hour_start,
    median_seconds,
)
from conversa.app.ports import DeadLetter
from conversa.app.projection import HourKey
from conversa.app.service import ConversaService

HOURS = 24
#: Failure reasons shown, most frequent first.
TOP_REASONS = 10


@dataclass(frozen=True, slots=True)
class HourTotals:
    """What happened in one hour (UTC), every channel and driver together."""

    start: datetime
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    received: int = 0


@dataclass(frozen=True, slots=True)
class DriverStats:
    """One driver over the window: its sends and their outcomes."""

    driver: str
    sent: int
    delivered: int
    failed: int
    #: Of the messages with a known outcome (delivered or failed), the share delivered.
    delivery_rate: float | None
    #: From queued to delivered, the median (read off the latency buckets).
    median_seconds_to_delivered: float | None


@dataclass(frozen=True, slots=True)
class FailureReason:
    code: str
    count: int


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    position: int
    head: int
    lag: int


@dataclass(frozen=True, slots=True)
class Overview:
    generated_at: datetime
    hours: list[HourTotals]
    drivers: list[DriverStats]
    failure_reasons: list[FailureReason]
    projection: ProjectionLag
    dead_letters: list[DeadLetter]
    breakers: list[BreakerStatus]
    findings: list[Check] = field(default_factory=list)

    @property
    def totals(self) -> HourTotals:
        """The window's sums."""
        return HourTotals(
            start=self.hours[0].start if self.hours else self.generated_at,
            queued=sum(h.queued for h in self.hours),
            sent=sum(h.sent for h in self.hours),
            delivered=sum(h.delivered for h in self.hours),
            read=sum(h.read for h in self.hours),
            failed=sum(h.failed for h in self.hours),
            received=sum(h.received for h in self.hours),
        )


def overview(
    service: ConversaService,
    *,
    hours: int = HOURS,
    findings: Callable[[ConversaService], list[Check]] = service_checks,
) -> Overview:
    """The overview of the last ``hours`` hours, the current one included. ``findings``:
    how to get ``diagnose``'s checks (a request path passes :class:`CachedFindings`:
    one of the checks reads every parking event of the store)."""
    now = service.clock()
    last = hour_of(now)
    first = last - hours + 1
    counts = service.view.hourly(first)
    status = service.projector().status()
    return Overview(
        generated_at=now,
        hours=hour_totals(counts, first, last),
        drivers=driver_stats(counts),
        failure_reasons=failure_reasons(counts),
        projection=ProjectionLag(status.position, status.head, status.lag),
        dead_letters=dead_letters(service),
        breakers=breaker_statuses(list(service.drivers.values())),
        findings=findings(service),
    )


def hour_totals(counts: dict[HourKey, int], first: int, last: int) -> list[HourTotals]:
    """One entry per hour from ``first`` to ``last``, zeros included."""
    by_hour: dict[int, dict[str, int]] = {h: {} for h in range(first, last + 1)}
    for (hour, kind, _channel, _driver, _detail), n in counts.items():
        sums = by_hour.get(hour)
        if sums is not None and kind != LATENCY:
            sums[kind] = sums.get(kind, 0) + n
    return [
        HourTotals(
            start=hour_start(hour),
            queued=sums.get(QUEUED, 0),
            sent=sums.get(SENT, 0),
            delivered=sums.get(DELIVERED, 0),
            read=sums.get(READ, 0),
            failed=sums.get(FAILED, 0),
            received=sums.get(RECEIVED, 0),
        )
        for hour, sums in sorted(by_hour.items())
    ]


def driver_stats(counts: dict[HourKey, int]) -> list[DriverStats]:
    """Each outbound driver's figures over the counters given, by name."""
    sums: dict[str, dict[str, int]] = {}
    latency: dict[str, dict[str, int]] = {}
    for (_hour, kind, _channel, driver, detail), n in counts.items():
        if kind in (SENT, DELIVERED, FAILED):
            mine = sums.setdefault(driver, {})
            mine[kind] = mine.get(kind, 0) + n
        elif kind == LATENCY:
            buckets = latency.setdefault(driver, {})
            buckets[detail] = buckets.get(detail, 0) + n
    stats = []
    for driver in sorted(sums):
        mine = sums[driver]
        delivered, failed = mine.get(DELIVERED, 0), mine.get(FAILED, 0)
        outcomes = delivered + failed
        stats.append(
            DriverStats(
                driver=driver,
                sent=mine.get(SENT, 0),
                delivered=delivered,
                failed=failed,
                delivery_rate=delivered / outcomes if outcomes else None,
                median_seconds_to_delivered=median_seconds(latency.get(driver, {})),
            )
        )
    return stats


def failure_reasons(counts: dict[HourKey, int], top: int = TOP_REASONS) -> list[FailureReason]:
    """Error codes of the failures, most frequent first (ties by code)."""
    by_code: dict[str, int] = {}
    for (_hour, kind, _channel, _driver, code), n in counts.items():
        if kind == FAILED:
            by_code[code or "unknown"] = by_code.get(code or "unknown", 0) + n
    ranked = sorted(by_code.items(), key=lambda item: (-item[1], item[0]))
    return [FailureReason(code, n) for code, n in ranked[:top]]


class CachedFindings:
    """``diagnose``'s checks of each open service, computed at most every ``fresh``
    seconds, in the background once there is a first answer: a page shows the last one
    at once, and at most one computation runs at a time per process.

    The unmatched-reports check reads every parking event of the store (hundreds of
    milliseconds with a million messages): fine for ``conversa diagnose``, not for each
    view of a page."""

    def __init__(
        self,
        compute: Callable[[ConversaService], list[Check]] = service_checks,
        *,
        fresh: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._fresh = fresh
        self._clock = clock
        self._lock = threading.Lock()
        self._known: weakref.WeakKeyDictionary[ConversaService, tuple[float, list[Check]]] = (
            weakref.WeakKeyDictionary()
        )
        self._refreshing: weakref.WeakSet[ConversaService] = weakref.WeakSet()

    def __call__(self, service: ConversaService) -> list[Check]:
        with self._lock:
            known = self._known.get(service)
            stale = known is None or self._clock() - known[0] >= self._fresh
            refresh = stale and known is not None and service not in self._refreshing
            if refresh:
                self._refreshing.add(service)
        if known is None:
            return self._refresh(service)
        if refresh:
            threading.Thread(
                target=self._refresh, args=(service,), name="conversa-findings", daemon=True
            ).start()
        return known[1]

    def _refresh(self, service: ConversaService) -> list[Check]:
        try:
            checks = self._compute(service)
            with self._lock:
                self._known[service] = (self._clock(), checks)
            return checks
        finally:
            with self._lock:
                self._refreshing.discard(service)
