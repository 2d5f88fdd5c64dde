"""The index from a provider's message id to ours, and the reports waiting for it.

Providers call back within milliseconds, sometimes before the driver's ``Sent`` (which
carries their id) is recorded. A report that names only a provider id nobody knows yet
is parked here; when the ``Sent`` lands, it is saved together with this index, in one
transaction, and the parked reports are applied to the message then. A report for an id
that never appears stays parked, and visible.
"""

from __future__ import annotations

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
        self.parked: list[dict[str, Any]] = []

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
        parked = list(self.parked)
        self._linked(message_id)
        return parked

    def park(self, report: dict[str, Any]) -> None:
        self._report_parked(report)

    @event(Linked)
    def _linked(self, message_id: UUID) -> None:
        self.message_id = message_id
        self.parked = []

    @event(ReportParked)
    def _report_parked(self, report: dict[str, Any]) -> None:
        self.parked.append(report)
