"""The index from a provider's message id to ours, and the reports waiting for it.

Providers call back within milliseconds, sometimes before the driver's ``Sent`` (which
carries their id) is recorded. A report that names only a provider id nobody knows yet
is parked here; when the ``Sent`` lands, it is saved together with this index, in one
transaction, and the parked reports are applied to the message then.

A report for an id that never appears (Meta reports the statuses of every message on the
account, also those other tools send) waits a while, then expires: ``ReportsExpired`` on
the index records that those reports were given up on, and a ``Sent`` that claims the id
after that does not apply them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

INDEX_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/provider-messages")


def provider_message_id_for(provider: str, provider_message_id: str) -> UUID:
    return uuid5(INDEX_NAMESPACE, f"{provider}\x00{provider_message_id}")


class ProviderMessage(Aggregate):
    class Opened(Aggregate.Created):
        provider: str
        provider_message_id: str
        message_id: UUID | None

    class Linked(Aggregate.Event):
        message_id: UUID

    class ReportParked(Aggregate.Event):
        report: dict[str, Any]

    class ReportsExpired(Aggregate.Event):
        """The ``count`` reports parked before ``parked_before`` were given up on."""

        parked_before: datetime
        count: int

    @event(Opened)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: ARG002 - taken by the library as the new aggregate's id
        provider: str,
        provider_message_id: str,
        message_id: UUID | None,
    ) -> None:
        self.provider = provider
        self.provider_message_id = provider_message_id
        self.message_id = message_id
        #: The reports waiting for a send to claim this id, each with when it was parked.
        self.parked: list[tuple[datetime, dict[str, Any]]] = []
        self.expired = 0

    @classmethod
    def open(
        cls, provider: str, provider_message_id: str, message_id: UUID | None
    ) -> ProviderMessage:
        return cls(
            id=provider_message_id_for(provider, provider_message_id),
            provider=provider,
            provider_message_id=provider_message_id,
            message_id=message_id,
        )

    def link(self, message_id: UUID) -> list[dict[str, Any]]:
        """Point the index at our message; return the reports parked until now, which the
        caller applies to the message in the same save."""
        if self.message_id is not None:
            return []
        parked = [report for _, report in self.parked]
        self._linked(message_id)
        return parked

    def park(self, report: dict[str, Any]) -> None:
        # Triggered by class, not through the method: the mutator also takes the event's
        # own timestamp, which no caller passes.
        self.trigger_event(self.ReportParked, report=report)

    def expire(self, parked_before: datetime) -> int:
        """Give up on the reports parked before ``parked_before``; return how many. A send
        that claims this id later does not apply them."""
        if self.message_id is not None:
            return 0
        count = sum(1 for parked_at, _ in self.parked if parked_at < parked_before)
        if count:
            self._reports_expired(parked_before, count)
        return count

    @property
    def oldest_parked_at(self) -> datetime | None:
        return min((parked_at for parked_at, _ in self.parked), default=None)

    @event(Linked)
    def _linked(self, message_id: UUID) -> None:
        self.message_id = message_id
        self.parked = []

    @event(ReportParked)
    def _report_parked(self, report: dict[str, Any], timestamp: datetime) -> None:
        self.parked.append((timestamp, report))

    @event(ReportsExpired)
    def _reports_expired(self, parked_before: datetime, count: int) -> None:
        self.parked = [(at, report) for at, report in self.parked if at >= parked_before]
        self.expired += count
