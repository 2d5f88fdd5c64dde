"""The delivery status lattice.

    queued < sent < delivered < read < undelivered < failed < cancelled

A message's status is the join (the maximum) of everything ever reported about it, so
reports may arrive in any order and any number of times and still give the same result.
The two failures sit on top: once a provider says a message failed, nothing moves it back
to delivered. Between them, ``failed`` (never left the provider) outranks ``undelivered``
(a carrier said no), so two conflicting terminal reports also settle the same way whatever
their order. ``cancelled`` tops them all: only a message no attempt has started can be
cancelled, so no provider ever heard of it, and nothing reported later revives it.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (Status.UNDELIVERED, Status.FAILED, Status.CANCELLED)

    def merge(self, other: Status) -> Status:
        """The join of two statuses in the lattice: whichever ranks higher."""
        return self if self.rank >= other.rank else other


_RANK = {status: rank for rank, status in enumerate(Status)}
