"""The conversa_messages read model: live following, rebuild, and crash safety."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

from conversa.app.projection import MessageRow, apply_event
from conversa.app.service import ConversaService
from conversa.app.worker import Worker
from conversa.domain.message import Message
from conversa.domain.status import Status

CHILD = Path(__file__).with_name("projector_child.py")


def report(service: ConversaService, message_id: UUID, status: Status) -> None:
    message: object = service.app.repository.get(message_id)
    assert isinstance(message, Message)
    message.record_report(status, error_code="30003" if status.is_final else None)
    service.app.save(message)


def send_many(service: ConversaService, count: int) -> list[UUID]:
    """``count`` messages left in every status of the lattice."""
    ids = []
    for n in range(count):
        result = service.send("sms" if n % 3 else "whatsapp", f"+1555123{n:04d}", {"body": f"n{n}"})
        ids.append(result.message_id)
        for status in list(Status)[2 : 2 + n % 5]:
            report(service, result.message_id, status)
    return ids


def expected_rows(service: ConversaService, ids: list[UUID]) -> list[MessageRow]:
    """Each message's row folded straight from its own events, without the projector."""
    rows = []
    for message_id in ids:
        row = None
        for event in service.app.events.get(message_id):
            assert isinstance(event, Message.Event)
            row = apply_event(row, event)
        assert row is not None
        rows.append(row)
    return sorted(rows, key=lambda r: r.id)


def wait_for(predicate: object, timeout: float = 5.0) -> float:
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("the read model did not catch up in time")
        time.sleep(0.005)
    return time.monotonic() - started


def row_status(service: ConversaService, message_id: UUID) -> str | None:
    row = service.view.get(message_id)
    return None if row is None else row.status


def test_the_worker_follows_new_events_and_a_rebuild_gives_the_same_table(
    service: ConversaService,
) -> None:
    stop = threading.Event()
    thread = Worker(service).start(stop)
    try:
        sent = service.send("sms", "+15551234567", {"body": "live"})
        assert wait_for(lambda: row_status(service, sent.message_id) == "sent") < 1.0
        report(service, sent.message_id, Status.DELIVERED)
        assert wait_for(lambda: row_status(service, sent.message_id) == "delivered") < 1.0

        ids = [sent.message_id, *send_many(service, 40)]
        head = service.app.recorder.max_notification_id()
        wait_for(lambda: service.projector().status().position == head)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()

    live = service.view.all_rows()
    assert live == expected_rows(service, ids)
    with service.backend.projection_lock() as acquired:
        assert acquired
        applied = service.projector(batch_size=7).rebuild()
    assert applied == sum(len(list(service.app.events.get(i))) for i in ids)
    assert service.view.all_rows() == live


def test_a_projection_killed_in_the_middle_of_a_batch_resumes_without_loss_or_repeat(
    service: ConversaService, backend_url: str
) -> None:
    ids = send_many(service, 60)

    for die_in_batch in (2, 3):
        killed = subprocess.run(
            [sys.executable, str(CHILD), backend_url, "25", str(die_in_batch)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert killed.returncode == -9, killed.stderr
    # Batches of 25 events: the first child committed one batch, the second two more; the
    # batch each was killed in left nothing behind.
    assert service.projector().status().position == 75
    assert len(service.view.all_rows()) < len(ids)

    finished = subprocess.run(
        [sys.executable, str(CHILD), backend_url, "25", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert service.projector().status().lag == 0
    assert service.view.all_rows() == expected_rows(service, ids)
