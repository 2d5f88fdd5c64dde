"""The read model's counters are exact, and every list filter is served by an index, on
SQLite and PostgreSQL: after a random mix of events followed live in random batches,
after a rebuild, after a projection killed mid-batch resumed, with the message log off."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg.sql import SQL

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.conversations import ConversationRow
from conversa.app.projection import MessageQuery, MessageRow, ProjectionOutOfSequence
from conversa.app.service import ConversaService
from conversa.domain.channel import Channel
from conversa.domain.content import Template
from conversa.domain.inbound import InboundMessage
from conversa.domain.message import Message
from conversa.domain.status import Status
from tests.support import make_settings, queued_message

CHILD = Path(__file__).with_name("projector_child.py")
NUMBERS = ("+15551230001", "+15551230002", "+447700900123")
START = datetime(2026, 1, 1, tzinfo=UTC)
METAS: list[dict[str, object]] = [{}, {"order": 7}, {"nested": {"_type_": "x", "y": [1]}}]


def random_messages(rng: random.Random, count: int) -> list[Message]:
    """New messages in every state the domain allows, with their events pending."""
    messages = []
    for n in range(count):
        content = rng.choice([None, Template("otp", ("1234",)), None])
        message = queued_message(
            key=f"k{rng.random()}-{n}",
            channel=rng.choice(["sms", "whatsapp"]),
            to=rng.choice(NUMBERS),
            content=content,
            meta=rng.choice(METAS) | {"n": n},
        )
        messages.append(message)
    return messages


def random_inbound(rng: random.Random) -> InboundMessage:
    return InboundMessage.receive(
        provider=rng.choice(["twilio", "whatsapp_cloud"]),
        provider_message_id=f"in-{rng.random()}",
        channel=rng.choice([Channel.SMS, Channel.WHATSAPP]),
        sender=rng.choice(NUMBERS),
        recipient="+15550001111",
        body=rng.choice([None, "YES"]),
    )


def random_step(rng: random.Random, message: Message) -> None:
    """One more thing happens to ``message`` (or nothing, when nothing can)."""
    now = START + timedelta(minutes=rng.randint(0, 100))
    choice = rng.randrange(7)
    if choice == 0:
        # Queued without a sender, a message moves to the conversation of the number its
        # driver says it sent from (when it says), once: the first one told stays.
        sender = rng.choice([None, "+15550001111", "+15550002222"])
        message.record_accepted(f"prov-{rng.randrange(10**6)}", None, sender=sender)
    elif choice == 1:
        message.record_retry("busy", "try later", now)
    elif choice == 2:
        message.record_attempt_failed("invalid_number", "no")
    elif choice == 3:
        message.claim_attempt(now + timedelta(days=1), now + timedelta(days=1, minutes=1))
    else:
        status = rng.choice([Status.SENT, Status.DELIVERED, Status.READ, Status.UNDELIVERED])
        message.record_report(status, provider_message_id="p" if status is Status.SENT else None)


def counted(rows: list[MessageRow]) -> dict[tuple[str, ...], int]:
    return dict(Counter((row.direction, row.channel, row.status) for row in rows))


def conversations_of(rows: list[MessageRow]) -> dict[UUID, ConversationRow]:
    """The conversations the rows make, computed here independently of the stores."""
    threads: dict[UUID, list[MessageRow]] = {}
    for row in rows:
        assert row.conversation_id is not None
        threads.setdefault(row.conversation_id, []).append(row)
    found = {}
    for conversation_id, thread in threads.items():
        inbound = [r for r in thread if r.direction == "inbound"]
        outbound = [r for r in thread if r.direction == "outbound"]
        found[conversation_id] = ConversationRow(
            id=conversation_id,
            channel=thread[0].channel,
            contact=inbound[0].sender if inbound else thread[0].to,  # type: ignore[arg-type]
            business_number=inbound[0].to if inbound else outbound[0].sender,
            last_message_at=max(r.created_at for r in thread),
            last_inbound_at=max((r.created_at for r in inbound), default=None),
            inbound_count=len(inbound),
            outbound_count=len(outbound),
        )
    return found


def assert_exact(service: ConversaService) -> None:
    """The counters are count(*) by channel and status, and every filter's total is the
    number of rows it matches."""
    rows = service.view.all_rows()
    assert service.view.counters() == counted(rows)
    assert {c.id: c for c in service.view.all_conversations()} == conversations_of(rows)
    for query in list_queries():
        page = service.view.query(query)
        matching = [
            row
            for row in rows
            if query.status in (None, row.status)
            and query.direction in (None, row.direction)
            and query.channel in (None, row.channel)
            and query.to in (None, row.to)
        ]
        assert page.total == len(matching), query
        newest = sorted(matching, key=lambda r: (r.created_at, r.id), reverse=True)
        assert page.rows == newest[: query.per_page], query


def list_queries() -> list[MessageQuery]:
    queries = []
    for status in (None, "queued", "sent", "delivered", "failed", "received"):
        for channel in (None, "sms", "whatsapp"):
            for to in (None, NUMBERS[0]):
                queries.append(MessageQuery(status=status, channel=channel, to=to, per_page=5))
    for direction in ("inbound", "outbound"):
        for channel in (None, "whatsapp"):
            queries.append(MessageQuery(direction=direction, channel=channel, per_page=5))
    return queries


def play(
    service: ConversaService, rng: random.Random, messages: int, rounds: int, *, follow: bool = True
) -> None:
    """Save random events in random groups, following them in random batch sizes
    (``follow=False``: leave them all to be projected)."""
    pending = random_messages(rng, messages)
    live: list[Message] = []
    for _ in range(rounds):
        rng.shuffle(pending)
        k = rng.randint(0, 6)
        born, pending = pending[:k], pending[k:]
        for message in rng.sample(live, min(len(live), rng.randint(0, 8))):
            for _ in range(rng.randint(1, 3)):
                random_step(rng, message)
        touched = [m for m in live if m.pending_events] + born
        # Inbound messages too, each in the conversation of one of the numbers.
        inbound = [random_inbound(rng) for _ in range(rng.randint(0, 2))]
        if touched or inbound:
            service.app.save(*touched, *inbound)
        live.extend(born)
        if follow:
            projector = service.projector(batch_size=rng.randint(1, 12))
            for _ in range(rng.randint(0, 3)):
                projector.process_batch()
    if follow:
        service.projector(batch_size=rng.randint(1, 50)).catch_up()


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_are_exact_live_after_a_rebuild_and_after_a_resumed_kill(
    service: ConversaService, backend_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    play(service, rng, messages=60, rounds=25)
    assert service.projector().status().lag == 0
    assert_exact(service)
    live = service.view.all_rows()
    conversations = service.view.all_conversations()
    assert conversations  # inbound ones, and outbound ones without a sender
    # Some messages moved to the conversation of the number their driver sent from.
    assert {r.sender for r in live if r.direction == "outbound"} >= {None, "+15550001111"}

    with service.backend.projection_lock() as acquired:
        assert acquired
        service.projector().rebuild()
    assert service.view.all_rows() == live
    assert service.view.all_conversations() == conversations
    assert_exact(service)

    # More events, then a projection killed inside its second batch, then resumed.
    play(service, rng, messages=20, rounds=10, follow=False)
    position = service.projector().status().position
    killed = subprocess.run(
        [sys.executable, str(CHILD), backend_url, "3", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert service.projector().status().position == position + 3
    finished = subprocess.run(
        [sys.executable, str(CHILD), backend_url, "5", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert service.projector().status().lag == 0
    assert_exact(service)


def test_counters_are_exact_without_the_message_log(backend_url: str) -> None:
    migrate(make_settings(backend_url))
    with bootstrap(make_settings(backend_url, log_messages="false")) as service:
        play(service, random.Random(3), messages=40, rounds=15)
        rows = service.view.all_rows()
        assert {row.status for row in rows} <= {"queued"}
        assert_exact(service)
        with service.backend.projection_lock() as acquired:
            assert acquired
            service.projector().rebuild()
        assert service.view.all_rows() == rows
        assert_exact(service)


def test_an_upgrade_counts_the_rows_already_there(backend_url: str) -> None:
    """A read model made before the counters existed gets them, counted, at migrate."""
    settings = make_settings(backend_url)
    migrate(settings)
    with bootstrap(settings) as service:
        play(service, random.Random(4), messages=20, rounds=8)
        expected = counted(service.view.all_rows())
        view: Any = service.view
        with view.datastore.transaction(commit=True) as curs:
            # As the table was before this version: no counters.
            counts = getattr(view, "counts", None)  # PostgreSQL: the schema-qualified name
            curs.execute(
                "DROP TABLE conversa_messages_counts"
                if counts is None
                else SQL("DROP TABLE {}").format(counts)
            )
    migrate(settings)
    with bootstrap(settings) as service:
        assert service.view.counters() == expected
        assert_exact(service)


def test_an_upgrade_counts_by_direction_too(backend_url: str) -> None:
    """Counters made when they counted channel and status only are made again, counted
    by direction too, at migrate."""
    settings = make_settings(backend_url)
    migrate(settings)
    with bootstrap(settings) as service:
        play(service, random.Random(7), messages=20, rounds=8)
        expected = counted(service.view.all_rows())
        view: Any = service.view
        counts = getattr(view, "counts", None)
        name = "conversa_messages_counts" if counts is None else counts
        with view.datastore.transaction(commit=True) as curs:
            for statement in (
                "DROP TABLE {}",
                "CREATE TABLE {} (channel text NOT NULL, status text NOT NULL, "
                "n bigint NOT NULL, PRIMARY KEY (channel, status))",
            ):
                curs.execute(
                    statement.format(name) if counts is None else SQL(statement).format(counts)
                )
    migrate(settings)
    with bootstrap(settings) as service:
        assert service.view.counters() == expected
        assert_exact(service)


#: Each filter of the list and the indexes that serve it in the list's order.
FILTERS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({}, ("newest",)),
    ({"status": "delivered"}, ("status",)),
    ({"channel": "whatsapp"}, ("channel",)),
    ({"direction": "inbound"}, ("direction",)),
    ({"to": NUMBERS[0]}, ("recipient",)),
    ({"status": "failed", "channel": "whatsapp"}, ("channel_status",)),
    ({"to": NUMBERS[0], "status": "delivered"}, ("recipient",)),
    ({"to": NUMBERS[0], "channel": "sms", "status": "sent"}, ("recipient", "channel_status")),
]


@pytest.mark.parametrize(
    ("filters", "indexes"), FILTERS, ids=["+".join(f) or "none" for f, _ in FILTERS]
)
def test_every_list_filter_reads_an_index_in_the_list_order(
    service: ConversaService, filters: dict[str, Any], indexes: tuple[str, ...]
) -> None:
    """The plans of the list's statements, with the planner told to avoid scanning the
    table and sorting where it can: each reads an index that gives the newest first."""
    play(service, random.Random(5), messages=30, rounds=6)
    for page in (1, 10):
        plans = service.view.plans(MessageQuery(page=page, **filters))  # type: ignore[attr-defined]
        rows_plan, total_plan = plans
        assert any(f"conversa_messages_{name}_idx" in rows_plan for name in indexes), rows_plan
        assert "Sort" not in rows_plan and "TEMP B-TREE" not in rows_plan, rows_plan
        assert "Seq Scan on conversa_messages " not in rows_plan, rows_plan
        if "to" in filters:
            # A recipient's rows are counted over an index (the recipient's, which holds
            # few rows per number), never by a scan of the table.
            assert "idx" in total_plan, total_plan
            assert "Seq Scan" not in total_plan and "SCAN conversa_messages " not in total_plan
        else:
            assert "conversa_messages_counts" in total_plan, total_plan
            assert "idx" not in total_plan.replace("conversa_messages_counts", ""), total_plan


def test_a_rebuild_that_fails_changes_nothing(service: ConversaService) -> None:
    play(service, random.Random(6), messages=15, rounds=5)
    rows, counters = service.view.all_rows(), service.view.counters()
    position = service.projector().status().position
    # A message whose stored events begin with a report: no row can be folded from it.
    orphan = queued_message(key="orphan")
    orphan.record_report(Status.DELIVERED)
    service.app.recorder.insert_events(
        [service.app.mapper.to_stored_event(orphan.collect_events()[1])]
    )

    with service.backend.projection_lock() as acquired:
        assert acquired
        with pytest.raises(ProjectionOutOfSequence):
            service.projector().rebuild()

    assert service.view.all_rows() == rows
    assert service.view.counters() == counters
    assert service.projector().status().position == position
    assert service.view.query(MessageQuery()).total == len(rows)
