"""Hourly counters of what happened to messages, kept by the read-model projection.

The console's overview shows the last 24 hours: sends, deliveries and failures per hour,
each driver's delivery rate and median time to delivered, the failure reasons. Counting
those over ``conversa_messages`` on each request would scan the table; instead the
projection keeps one counter per (hour, kind, channel, driver, detail) in the same
transaction as the rows, and a rebuild computes them again from the events, the same way.

A counter counts a message's status changes, never its raw events, so duplicates, late
reports and arrival order change nothing (the status lattice already settles them):

- ``queued``: an outbound message was recorded; ``received``: an inbound one arrived;
- ``sent``: it left ``queued`` for ``sent``, ``delivered`` or ``read`` (went to a provider);
- ``delivered``: it first reached ``delivered`` or ``read``; ``read``: it reached ``read``;
- ``failed``: it first reached ``failed`` or ``undelivered``; the detail is the error code;
- ``latency``: with each ``delivered``, the time from queued to delivered, as the upper
  bound in seconds of its bucket (:data:`LATENCY_BOUNDS`), the detail; a median is read
  off these buckets as Prometheus's histogram_quantile does.

The hour is the event's, as whole hours since the epoch (UTC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from conversa.app.projection import INBOUND, EventFacts, HourKey, MessageRow
from conversa.domain.status import Status

__all__ = ["HourKey", "count_changes", "median_seconds"]

QUEUED = "queued"
RECEIVED = "received"
SENT = "sent"
DELIVERED = "delivered"
READ = "read"
FAILED = "failed"
LATENCY = "latency"

#: Upper bounds (seconds) of the time-to-delivered buckets; the last is unbounded.
LATENCY_BOUNDS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    21600,
    86400,
    math.inf,
)

_MERGE = {(a.value, b.value): a.merge(b).value for a in Status for b in Status}
_RANK = {s.value: s.rank for s in Status}
_FINAL = {Status.FAILED.value, Status.UNDELIVERED.value}
_DELIVERED_RANK = Status.DELIVERED.rank


def hour_of(moment: datetime) -> int:
    """Whole hours since the epoch, UTC (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 3600)


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def latency_bucket(seconds: float) -> str:
    """The detail of a time-to-delivered: its bucket's upper bound, as text."""
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return _bound_text(bound)
    return "inf"  # pragma: no cover - the last bound is infinite


def _bound_text(bound: float) -> str:
    return "inf" if math.isinf(bound) else str(int(bound))


def count_changes(
    row: MessageRow | None,
    events: Iterable[EventFacts],
    into: dict[HourKey, int],
    *,
    keep_finished: bool = True,
) -> None:
    """Add to ``into`` the counters that ``events`` (one message's, in version order)
    move, given the message's row before them (None before its first event).

    ``keep_finished=False`` (no message log): a message's row goes once it leaves
    ``queued``, and the projection skips its later events; so are they here, which keeps
    live following and a rebuild equal."""

    def add(moment: datetime, kind: str, driver: str, detail: str = "") -> None:
        key = (hour_of(moment), kind, str(channel), str(driver), detail)
        into[key] = into.get(key, 0) + 1

    facts = iter(events)
    if row is None:
        first = next(facts, None)
        if first is None:
            return
        fields = first.fields
        if first.kind == "received":
            channel = fields["channel"]
            add(first.timestamp, RECEIVED, fields["provider"])
            return
        if first.kind != "queued":
            return  # the projection refuses this itself
        channel, driver, created_at = fields["channel"], fields["driver"], first.timestamp
        status = Status.QUEUED.value
        add(first.timestamp, QUEUED, driver)
    else:
        if row.direction == INBOUND:
            return
        channel, driver, created_at, status = row.channel, row.driver, row.created_at, row.status
    for f in facts:
        if not keep_finished and status != Status.QUEUED.value:
            return
        kind, fields = f.kind, f.fields
        if kind == "sent":
            driver = fields.get("driver") or driver
            by, new = driver, _MERGE[status, "sent"]
        elif kind in (DELIVERED, READ):
            by, new = driver, _MERGE[status, kind]
        elif kind == "failed":
            by, new = fields.get("driver") or driver, _MERGE[status, fields["status"]]
        else:
            continue
        if new == status:
            continue
        if status == Status.QUEUED.value and new not in _FINAL:
            add(f.timestamp, SENT, by)
        if _RANK[status] < _DELIVERED_RANK <= _RANK[new] and new not in _FINAL:
            add(f.timestamp, DELIVERED, by)
            seconds = (f.timestamp - created_at).total_seconds()
            add(f.timestamp, LATENCY, by, latency_bucket(max(seconds, 0.0)))
        if new == Status.READ.value:
            add(f.timestamp, READ, by)
        if new in _FINAL and status not in _FINAL:
            add(f.timestamp, FAILED, by, fields["code"] or "")
        status = new


@dataclass(frozen=True, slots=True)
class HourCount:
    """One stored counter."""

    hour: int
    kind: str
    channel: str
    driver: str
    detail: str
    n: int

    @property
    def key(self) -> HourKey:
        return (self.hour, self.kind, self.channel, self.driver, self.detail)


def as_mapping(counts: Iterable[HourCount]) -> dict[HourKey, int]:
    return {c.key: c.n for c in counts if c.n}


def median_seconds(buckets: Mapping[str, int]) -> float | None:
    """The median time to delivered from the counts of its buckets (detail -> count),
    interpolated within the bucket it falls in; None without any. In the unbounded last
    bucket, its lower bound."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = total / 2
    seen = 0
    lower = 0.0
    for bound in LATENCY_BOUNDS:
        n = buckets.get(_bound_text(bound), 0)
        if n and seen + n >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = bound
    return lower  # pragma: no cover - the buckets above cover every count
