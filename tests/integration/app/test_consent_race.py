"""1,000 concurrent sends to one number while it opts out, on PostgreSQL (the group
commit on, as in production): every send whose ``Queued`` commits after the opt-out's
commit is refused (failed ``recipient_opted_out``, no provider call), and none whose
``Queued`` commits before it. The store's notification order is its commit order (the
insert's table lock), so "after" is "a higher notification id"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from conversa.app.results import SendResult
from conversa.app.service import ConversaService
from conversa.domain.recipient import recipient_id_for
from tests.integration.app.test_async_sends import CountingDriver, open_service

TO = "+15559990000"
SENDS = 1000
OPT_OUT_AFTER = 300


@pytest.fixture
def driver() -> CountingDriver:
    return CountingDriver()


@pytest.fixture
def service(postgres_url: str, driver: CountingDriver) -> Iterator[ConversaService]:
    with open_service(postgres_url, driver) as service:
        yield service


@pytest.mark.postgres
def test_every_send_committed_after_the_opt_out_is_refused_and_none_before(
    service: ConversaService, driver: CountingDriver
) -> None:
    done = threading.Semaphore(0)

    def send(index: int) -> SendResult:
        try:
            return service.send("sms", TO, {"body": f"message {index}"})
        finally:
            done.release()

    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(send, i) for i in range(SENDS)]
        for _ in range(OPT_OUT_AFTER):
            done.acquire()
        # Dozens of sends are in flight now, between their consent read and their commit.
        service.consent.change(TO, "opted_out", "sms", "all", "keyword", keyword="STOP")
        results = [future.result() for future in futures]

    position: dict[tuple[object, int], int] = {}
    for notification in service.app.recorder.select_notifications(start=1, limit=100_000):
        position[(notification.originator_id, notification.originator_version)] = notification.id
    recipient = recipient_id_for(TO)
    opted_out_at = position[(recipient, 2)]  # Registered, then OptedOut
    before = [r for r in results if position[(r.message_id, 1)] < opted_out_at]
    after = [r for r in results if position[(r.message_id, 1)] > opted_out_at]
    assert len(before) + len(after) == SENDS
    assert len(before) >= OPT_OUT_AFTER and after, (len(before), len(after))
    assert all(r.ok and r.status == "sent" for r in before)
    assert all(driver.calls[str(r.message_id)] == 1 for r in before)
    assert all(
        r.status == "failed" and r.error is not None and r.error["code"] == "recipient_opted_out"
        for r in after
    )
    assert all(driver.calls[str(r.message_id)] == 0 for r in after)
