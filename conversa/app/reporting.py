"""Applying providers' status reports to messages, in any order, however often they come."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from conversa.app.application import ConversaApp
from conversa.app.messages import MAX_CONFLICT_RETRIES, MessageNotFound, load_message
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.domain.message import Message
from conversa.domain.provider_message import ProviderMessage, provider_message_id_for
from conversa.domain.status import Status

log = logging.getLogger(__name__)

#: Drivers whose providers call back; their sends are indexed by the provider's id.
REPORTING_DRIVERS = frozenset({"twilio", "whatsapp_cloud"})


def report_fields(report: StatusReport) -> dict[str, Any]:
    """A report as parked on the index (plain data)."""
    return {
        "status": report.status.value,
        "raw_status": report.raw_status,
        "error_code": report.error_code,
        "error_message": report.error_message,
    }


def apply_fields(message: Message, fields: dict[str, Any], provider_message_id: str | None) -> bool:
    return message.record_report(
        Status(fields["status"]),
        provider_message_id=provider_message_id,
        error_code=fields.get("error_code"),
        error_message=fields.get("error_message"),
    )


def load_index(app: ConversaApp, provider: str, provider_message_id: str) -> ProviderMessage | None:
    try:
        index: object = app.repository.get(provider_message_id_for(provider, provider_message_id))
    except AggregateNotFoundError:
        return None
    assert isinstance(index, ProviderMessage)
    return index


def link_sent(app: ConversaApp, message: Message, provider: str) -> ProviderMessage | None:
    """The index to save with ``message`` now that it has a provider id; any reports parked
    on it are applied to ``message`` (not yet saved). None when there is nothing to save."""
    if message.provider_message_id is None or provider not in REPORTING_DRIVERS:
        return None
    index = load_index(app, provider, message.provider_message_id)
    if index is None:
        return ProviderMessage.open(provider, message.provider_message_id, message.id)
    for fields in index.link(message.id):
        apply_fields(message, fields, None)
    return index if index.pending_events else None


class Reporter:
    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def record(self, report: StatusReport) -> ReportOutcome:
        """Apply one report. Safe to call concurrently and any number of times."""
        if report.status is Status.QUEUED:
            return ReportOutcome.UNCHANGED  # "accepted", "sending"...: moves nothing, ever
        if report.message_id is not None:
            try:
                return self._apply(report.message_id, report)
            except MessageNotFound:
                pass  # not ours after all (or another deployment's): match by provider id
        if report.provider_message_id is None:
            log.warning("a %s report names no message; ignored", report.provider)
            return ReportOutcome.UNCHANGED
        for _ in range(MAX_CONFLICT_RETRIES):
            index = load_index(self.app, report.provider, report.provider_message_id)
            if index is not None and index.message_id is not None:
                return self._apply(index.message_id, report)
            if index is None:
                index = ProviderMessage.open(report.provider, report.provider_message_id, None)
            index.park(report_fields(report))
            try:
                self.app.save(index)
            except IntegrityError:
                continue  # the Sent that links it landed meanwhile, or another report
            log.info(
                "parked a %s report for unknown provider id %s",
                report.provider,
                report.provider_message_id,
            )
            return ReportOutcome.PARKED
        msg = f"index of {report.provider_message_id} kept changing"
        raise RuntimeError(msg)

    def _apply(self, message_id: UUID, report: StatusReport) -> ReportOutcome:
        fields = report_fields(report)
        for _ in range(MAX_CONFLICT_RETRIES):
            message = load_message(self.app, message_id)
            if not apply_fields(message, fields, report.provider_message_id):
                return ReportOutcome.UNCHANGED
            try:
                self.app.save(message)
            except IntegrityError:
                continue  # a concurrent report or outcome: decide again on the new version
            return ReportOutcome.APPLIED
        msg = f"message {message_id} kept changing"
        raise RuntimeError(msg)

    def unmatched(self) -> int:
        """Reports parked for provider ids that no sent message has claimed (yet)."""
        topics = [get_topic(ProviderMessage.ReportParked), get_topic(ProviderMessage.Linked)]
        parked: dict[UUID, int] = {}
        for notification in _all(self.app, topics):
            if notification.topic == topics[1]:
                parked.pop(notification.originator_id, None)
            else:
                parked[notification.originator_id] = parked.get(notification.originator_id, 0) + 1
        return sum(parked.values())


def _all(app: ConversaApp, topics: list[str]) -> Iterable[Any]:
    start: int | None = None
    while page := app.recorder.select_notifications(
        start=start, limit=1000, topics=topics, inclusive_of_start=False
    ):
        yield from page
        start = page[-1].id
