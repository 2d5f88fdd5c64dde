"""Status reports in any order and any number of times settle the same way, stored."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversa.app.service import ConversaService
from conversa.domain.message import Message
from conversa.domain.status import Status

REPORTS = [Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reports=st.lists(st.sampled_from(REPORTS), min_size=1, max_size=8), seed=st.randoms())
def test_reports_applied_in_any_order_give_the_same_stored_status(
    service: ConversaService, reports: list[Status], seed: st.SearchStrategy[object]
) -> None:
    shuffled = list(reports)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    statuses = []
    for order in (reports, shuffled):
        sent = service.send("sms", "+15551234567", {"body": "x"})
        for status in order:
            # Each report is its own request: load, decide, save.
            message: object = service.app.repository.get(sent.message_id)
            assert isinstance(message, Message)
            message.record_report(status)
            service.app.save(message)
        stored: object = service.app.repository.get(sent.message_id)
        assert isinstance(stored, Message)
        statuses.append(stored.status)
        # Queued and Sent, then one event per report that moved the status forward.
        assert len(list(service.app.events.get(sent.message_id))) == 2 + increases(order)
    assert statuses[0] == statuses[1] == max([Status.SENT, *reports], key=lambda s: s.rank)


def increases(order: list[Status]) -> int:
    current, count = Status.SENT, 0
    for status in order:
        if status.rank > current.rank:
            current, count = status, count + 1
    return count
