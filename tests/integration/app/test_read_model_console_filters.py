"""The message list's console filters, on SQLite and PostgreSQL: by driver and by time
range, each served by an index in the list's order, and a count that stops at a limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.domain.channel import Channel
from conversa.domain.inbound import InboundMessage
from tests.support import queued_message


def inbound(n: int) -> InboundMessage:
    return InboundMessage.receive(
        provider="twilio",
        provider_message_id=f"SM{n}",
        channel=Channel.SMS,
        sender="+15557654321",
        recipient="+15550001111",
        body="hi",
    )


def test_driver_and_time_range_filters_and_a_bounded_count(service: ConversaService) -> None:
    early = [queued_message(key=f"early-{n}") for n in range(3)]
    service.app.save(*early, inbound(1))
    time.sleep(0.02)
    boundary = datetime.now(UTC)
    time.sleep(0.02)
    late = [queued_message(key=f"late-{n}") for n in range(2)]
    service.app.save(*late, inbound(2), inbound(3))
    service.projector().catch_up()

    def ids(**filters: object) -> tuple[set[str], int, bool]:
        page = service.list_messages(MessageQuery(**filters))  # type: ignore[arg-type]
        return {str(r.id) for r in page.rows}, page.total, page.total_exact

    by_twilio = ids(driver="twilio")
    assert by_twilio[1:] == (3, True) and len(by_twilio[0]) == 3
    assert ids(driver="log", since=boundary) == ({str(m.id) for m in late}, 2, True)
    assert ids(driver="log", until=boundary) == ({str(m.id) for m in early}, 3, True)
    assert ids(since=boundary, until=datetime.now(UTC))[1] == 4
    assert ids(since=datetime.now(UTC))[1] == 0
    # Counted up to the limit when the counters cannot answer; exact when they can.
    assert ids(driver="log", count_limit=4)[1:] == (4, False)
    assert ids(driver="log", count_limit=5)[1:] == (5, True)
    assert ids(status="queued", count_limit=2)[1:] == (5, True)


def test_the_console_filters_read_an_index_in_the_list_order(service: ConversaService) -> None:
    service.app.save(*[queued_message(key=f"m-{n}") for n in range(5)], inbound(1))
    service.projector().catch_up()
    now = datetime.now(UTC)
    cases = [
        ({"driver": "twilio"}, "driver"),
        ({"since": now}, "newest"),
        ({"status": "queued", "until": now}, "status"),
        ({"driver": "log", "since": now, "count_limit": 10_000}, "driver"),
    ]
    for filters, index in cases:
        rows_plan, total_plan = service.view.plans(MessageQuery(**filters))  # type: ignore[attr-defined, arg-type]
        assert f"conversa_messages_{index}_idx" in rows_plan, (filters, rows_plan)
        assert "Sort" not in rows_plan and "TEMP B-TREE" not in rows_plan, rows_plan
        assert "Seq Scan" not in total_plan and "SCAN conversa_messages " not in total_plan, (
            filters,
            total_plan,
        )
