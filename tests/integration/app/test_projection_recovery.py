"""The projection does not get stuck, on SQLite and PostgreSQL: not after another process
moved the position while this one had lost its lock, and not after the message log was
switched back on (``CONVERSA_LOG_MESSAGES`` false, then true) with late reports coming in."""

from __future__ import annotations

import threading
from uuid import UUID

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projection import MessageRow, apply_event
from conversa.app.service import ConversaService
from conversa.domain.message import Message
from conversa.domain.status import Status
from tests.support import make_settings


class StopWhenCaughtUp:
    """The projector's wake-up signal: its first idle wait means it caught up; stop there."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def wait(self, timeout: float) -> None:  # noqa: ARG002 - the projector's idle wait
        self.stop.set()

    def close(self) -> None:
        pass


def report(service: ConversaService, message_id: UUID, status: Status) -> None:
    message: object = service.app.repository.get(message_id)
    assert isinstance(message, Message)
    message.record_report(status, error_code="30003" if status.is_final else None)
    service.app.save(message)


def folded(service: ConversaService, message_id: UUID) -> MessageRow:
    """The message's row folded straight from its own events, without the projector."""
    row = None
    for event in service.app.events.get(message_id):
        row = apply_event(row, event)
    assert row is not None
    return row


def test_a_projector_that_takes_its_lock_back_resumes_from_the_stored_position(
    service: ConversaService,
) -> None:
    ids = [service.send("sms", "+15551234567", {"body": f"n{n}"}).message_id for n in range(6)]
    # This process runs the projection for one batch, then loses its lock (a database blip)...
    first = service.projector(batch_size=5)
    assert first.process_batch() == 5
    # ...while another process takes over and moves the position on.
    service.projector().catch_up()
    for message_id in ids[:3]:
        report(service, message_id, Status.DELIVERED)
    ids.append(service.send("sms", "+15551234567", {"body": "later"}).message_id)

    # It takes the lock back: the worker calls run() again on the same projector.
    stop = threading.Event()
    first.run(stop, StopWhenCaughtUp(stop))

    status = service.projector().status()
    assert status.lag == 0
    assert service.view.all_rows() == sorted((folded(service, i) for i in ids), key=lambda r: r.id)


def test_switching_the_message_log_back_on_rebuilds_the_rows_late_reports_need(
    backend_url: str,
) -> None:
    migrate(make_settings(backend_url))
    with bootstrap(make_settings(backend_url, log_messages="false")) as service:
        early = [service.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(3)]
        assert {r.status for r in early} == {"sent"}
        service.projector().catch_up()
        assert service.view.all_rows() == []  # finished messages keep no row
        report(service, early[2].message_id, Status.DELIVERED)
        service.projector().catch_up()

    with bootstrap(make_settings(backend_url, log_messages="true")) as service:
        # Late reports for messages whose rows were deleted while the log was off.
        report(service, early[0].message_id, Status.DELIVERED)
        report(service, early[1].message_id, Status.DELIVERED)
        report(service, early[1].message_id, Status.READ)
        later = service.send("sms", "+15551234567", {"body": "later"})
        service.projector().catch_up()

        assert service.projector().status().lag == 0
        live = {row.id: row for row in service.view.all_rows()}
        assert set(live) == {early[0].message_id, early[1].message_id, later.message_id}
        for message_id, row in live.items():
            assert row == folded(service, message_id)
        assert live[early[1].message_id].status == "read"

        # The rows the live table has are exactly what a rebuild makes of them.
        with service.backend.projection_lock() as acquired:
            assert acquired
            service.projector().rebuild()
        rebuilt = {row.id: row for row in service.view.all_rows()}
        assert {i: rebuilt[i] for i in live} == live
        assert len(rebuilt) == 4  # the rebuild also brings back the one with no late report
