"""Applying providers' status reports to messages, in any order, however often they come."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from conversa.app.application import ConversaApp
from conversa.app.messages import MAX_CONFLICT_RETRIES, MessageNotFound, fold, load_message
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.writer import Writer
from conversa.domain.message import Message
from conversa.domain.provider_message import ProviderMessage, provider_message_id_for
from conversa.domain.status import Status

log = logging.getLogger(__name__)

#: Drivers whose providers call back; their sends are indexed by the provider's id.
REPORTING_DRIVERS = frozenset({"twilio", "whatsapp_cloud", "vonage", "africastalking"})

PARKED = get_topic(ProviderMessage.ReportParked)
LINKED = get_topic(ProviderMessage.Linked)
EXPIRED = get_topic(ProviderMessage.ReportsExpired)
#: The events that change which reports are parked, in the order the store recorded them.
PARKING_TOPICS = [PARKED, LINKED, EXPIRED]


@dataclass(frozen=True, slots=True)
class ParkedCounts:
    """Reports for provider ids no send has claimed."""

    parked: int  # waiting for their send now
    expired: int  # given up on, since the beginning
    overdue: int = 0  # of the parked, those already past the window: nobody expires them


def report_fields(report: StatusReport) -> dict[str, Any]:
    """A report as parked on the index (plain data)."""
    fields = {
        "status": report.status.value,
        "raw_status": report.raw_status,
        "error_code": report.error_code,
        "error_message": report.error_message,
    }
    if report.part_id is not None:
        fields["part"] = report.part_id
    return fields


def apply_fields(message: Message, fields: dict[str, Any], provider_message_id: str | None) -> bool:
    return message.record_report(
        Status(fields["status"]),
        provider_message_id=provider_message_id,
        error_code=fields.get("error_code"),
        error_message=fields.get("error_message"),
        part=fields.get("part"),
    )


def load_index(app: ConversaApp, provider: str, provider_message_id: str) -> ProviderMessage | None:
    try:
        index: object = app.repository.get(
            provider_message_id_for(provider, provider_message_id), projector_func=fold
        )
    except AggregateNotFoundError:
        return None
    assert isinstance(index, ProviderMessage)
    return index


def link_sent(
    app: ConversaApp, message: Message, provider: str, *, assume_new: bool = False
) -> ProviderMessage | None:
    """The index to save with ``message`` now that it has a provider id; any reports parked
    on it are applied to ``message`` (not yet saved). None when there is nothing to save.

    ``assume_new``: create the index without reading it first (the common case: no report
    came before the provider's answer). If a report did park one meanwhile, saving the new
    index conflicts, and the caller reads the message and the index again."""
    if message.provider_message_id is None or provider not in REPORTING_DRIVERS:
        return None
    if assume_new:
        return ProviderMessage.open(provider, message.provider_message_id, message.id)
    index = load_index(app, provider, message.provider_message_id)
    if index is None:
        return ProviderMessage.open(provider, message.provider_message_id, message.id)
    for fields in index.link(message.id):
        apply_fields(message, fields, None)
    return index if index.pending_events else None


class Reporter:
    def __init__(
        self,
        app: ConversaApp,
        writer: Writer,
        *,
        parked_window: timedelta = timedelta(hours=24),
    ) -> None:
        """``parked_window``: how long a report for an unclaimed provider id is kept."""
        self.app = app
        self.writer = writer
        self.parked_window = parked_window
        # What expire_parked() has read of the store: the indexes with parked reports, and
        # when the oldest of each was parked. The indexes themselves are the truth.
        self._expiry_lock = threading.Lock()
        self._expiry_position: int | None = None
        self._waiting: dict[UUID, datetime] = {}
        #: The consent change a provider's error code makes (Meta 131050 comes in a
        #: failed status): the recipient to save with the report; wired by the service.
        self.provider_signal: Callable[[Message, str | None], list[Aggregate]] | None = None

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
                self.writer.save(index)
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
            others = (
                self.provider_signal(message, f"{report.provider}_{report.error_code}")
                if self.provider_signal is not None and report.error_code
                else []
            )
            try:
                self.writer.save(message, *others)
            except IntegrityError:
                continue  # a concurrent report or outcome: decide again on the new version
            return ReportOutcome.APPLIED
        msg = f"message {message_id} kept changing"
        raise RuntimeError(msg)

    def unmatched(self) -> int:
        """Reports parked for provider ids that no sent message has claimed (yet)."""
        return self.parked_counts().parked

    def parked_counts(self, now: datetime | None = None) -> ParkedCounts:
        """How many reports wait for their send, how many expired, and (given ``now``) how
        many of those waiting are past the window.

        One pass over the parking events of the store. Only the reports still parked when
        an expiry or the end of the pass comes are decoded (for when they were parked): the
        many that their Sent claimed within seconds cost no more than reading them.
        """
        waiting: dict[UUID, list[Any]] = {}  # notifications, decoded to datetimes on need
        expired = 0
        for notification in _all(self.app, PARKING_TOPICS):
            index_id = notification.originator_id
            if notification.topic == PARKED:
                waiting.setdefault(index_id, []).append(notification)
            elif notification.topic == LINKED:
                waiting.pop(index_id, None)
            else:
                expiry = self.app.mapper.to_domain_event(notification)
                assert isinstance(expiry, ProviderMessage.ReportsExpired)
                expired += expiry.count
                parked_at = (self._parked_at(entry) for entry in waiting.get(index_id, []))
                waiting[index_id] = [at for at in parked_at if at >= expiry.parked_before]
        parked = sum(len(entries) for entries in waiting.values())
        overdue = 0
        if now is not None and parked:
            cutoff = now - self.parked_window
            overdue = sum(
                1
                for entries in waiting.values()
                for entry in entries
                if self._parked_at(entry) < cutoff
            )
        return ParkedCounts(parked=parked, expired=expired, overdue=overdue)

    def expire_parked(self, now: datetime) -> int:
        """Expire the reports parked longer than the window; return how many expired.

        Each expiry is a ``ReportsExpired`` event on the provider id's index, so the
        history stays exact and a later send that claims the id does not apply them. The
        first call reads every parking event of the store; later calls only new ones.
        """
        cutoff = now - self.parked_window
        with self._expiry_lock:
            self._follow_parking()
            expired = 0
            for index_id, oldest in list(self._waiting.items()):
                if oldest < cutoff:
                    expired += self._expire(index_id, cutoff)
        if expired:
            log.info(
                "expired %d status report(s) no send claimed within %s", expired, self.parked_window
            )
        return expired

    def _follow_parking(self) -> None:
        for notification in _all(self.app, PARKING_TOPICS, after=self._expiry_position):
            index_id = notification.originator_id
            if notification.topic == PARKED:
                parked_at = self._parked_at(notification)
                oldest = self._waiting.get(index_id)
                self._waiting[index_id] = parked_at if oldest is None else min(oldest, parked_at)
            elif notification.topic == LINKED:
                self._waiting.pop(index_id, None)
            # An expiry made elsewhere: the next look at the index itself settles it.
            self._expiry_position = notification.id

    def _expire(self, index_id: UUID, cutoff: datetime) -> int:
        for _ in range(MAX_CONFLICT_RETRIES):
            index: object = self.app.repository.get(index_id)
            assert isinstance(index, ProviderMessage)
            count = index.expire(cutoff)
            if count:
                try:
                    self.writer.save(index)
                except IntegrityError:
                    continue  # its Sent (or another report) landed meanwhile: look again
            oldest = index.oldest_parked_at
            if oldest is None or index.message_id is not None:
                self._waiting.pop(index_id, None)
            else:
                self._waiting[index_id] = oldest
            return count
        return 0  # it kept changing; the next round tries again

    def _parked_at(self, entry: Any) -> datetime:
        """When a report was parked: ``entry`` is its notification, or already the answer."""
        if isinstance(entry, datetime):
            return entry
        event = self.app.mapper.to_domain_event(entry)
        assert isinstance(event, ProviderMessage.ReportParked)
        return event.timestamp


def _all(app: ConversaApp, topics: list[str], *, after: int | None = None) -> Iterable[Any]:
    start = after
    while page := app.recorder.select_notifications(
        start=start, limit=1000, topics=topics, inclusive_of_start=False
    ):
        yield from page
        start = page[-1].id
