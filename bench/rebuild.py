"""Read-model rebuild speed on PostgreSQL: ``Projector.rebuild()`` over a seeded store.

Seeds a scratch database with ``--messages`` messages (default 50,000) of two or three
events each, built in memory and saved ``--save-batch`` aggregates per transaction, then
times ``service.projector().rebuild()`` (empty the view, replay every event) ``--runs``
times, checking after each that the read model has exactly one row per message.

    python -m bench.rebuild [--messages 50000] [--runs 3] [--batch-size N ...] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import uuid4

if __package__ in (None, ""):  # run as a file (python bench/rebuild.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_settings, scratch_database
from bench._stats import Summary, quiet_logging
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projection import MessageQuery
from conversa.app.projector import DEFAULT_BATCH_SIZE
from conversa.app.service import ConversaService
from conversa.domain.content import Body
from conversa.domain.message import ATTEMPT_BY_REQUEST, Message
from conversa.domain.phone import PhoneNumber
from conversa.domain.status import Status

RECIPIENT = PhoneNumber.parse("+15551234567")


def seeded_messages(count: int) -> Iterator[Message]:
    """Sent messages; every second one also delivered (2.5 events per message)."""
    for n in range(count):
        message = Message(
            id=uuid4(),
            channel="sms",
            to=RECIPIENT,
            sender=None,
            content=Body(f"seeded message {n}"),
            driver="log",
            meta={},
            idempotency_key=None,
            fingerprint="x",
            next_attempt_at=None,
            nonce=None,
            attempt_by=ATTEMPT_BY_REQUEST,
            reply_to=None,
            quote=None,
            category="transactional",
            consent_override=False,
            scheduled_at=None,
        )
        message.record_accepted(f"log-{n}", {"driver": "log"})
        if n % 2 == 0:
            message.record_report(Status.DELIVERED)
        yield message


def seed(service: ConversaService, messages: int, per_save: int) -> int:
    """Store ``messages`` messages, ``per_save`` aggregates per transaction; return events."""
    events = 0
    batch: list[Message] = []
    for message in seeded_messages(messages):
        batch.append(message)
        if len(batch) == per_save:
            events += _save(service, batch)
    return events + _save(service, batch)


def _save(service: ConversaService, batch: list[Message]) -> int:
    if not batch:
        return 0
    recordings = service.app.save(*batch)
    batch.clear()
    return len(recordings)


def delivered(messages: int) -> int:
    return (messages + 1) // 2


def timed_rebuild(service: ConversaService, batch_size: int, messages: int, events: int) -> float:
    """Rebuild once, check the read model; return events per second."""
    projector = service.projector(batch_size=batch_size)
    started = time.perf_counter()
    applied = projector.rebuild()
    elapsed = time.perf_counter() - started
    rows = service.view.query(MessageQuery(per_page=1)).total
    done = service.view.query(MessageQuery(status="delivered", per_page=1)).total
    status = projector.status()
    if applied != events or rows != messages or done != delivered(messages) or status.lag:
        msg = (
            f"rebuild applied {applied} of {events} events, left {rows} rows for {messages} "
            f"messages ({done} delivered, expected {delivered(messages)}), lag {status.lag}"
        )
        raise AssertionError(msg)
    return applied / elapsed


def profile_rebuild(service: ConversaService, batch_size: int, top: int) -> None:
    profiler = cProfile.Profile()
    projector = service.projector(batch_size=batch_size)
    profiler.enable()
    projector.rebuild()
    profiler.disable()
    print(f"# cProfile of one rebuild (batch {batch_size}), top {top} by cumulative time")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    print(f"# top {top} by own time")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebuild", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=50_000, help="messages seeded (50000)")
    parser.add_argument("--runs", type=int, default=3, help="timed rebuilds per batch size (3)")
    parser.add_argument(
        "--batch-size",
        type=int,
        action="append",
        help=f"projector batch size (repeatable; default {DEFAULT_BATCH_SIZE}, the projector's)",
    )
    parser.add_argument(
        "--save-batch", type=int, default=500, help="aggregates per save while seeding (500)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one rebuild and print the top"
    )
    args = parser.parse_args(argv)
    batch_sizes: list[int] = args.batch_size or [DEFAULT_BATCH_SIZE]
    if args.messages < 1 or args.runs < 1 or args.save_batch < 1 or min(batch_sizes) < 1:
        parser.error("--messages, --runs, --save-batch and --batch-size must be at least 1")

    with scratch_database() as url:
        settings = bench_settings(url)
        migrate(settings)
        with bootstrap(settings) as service, quiet_logging():
            started = time.perf_counter()
            events = seed(service, args.messages, args.save_batch)
            seconds = time.perf_counter() - started
            print(
                f"postgresql seed: {events} events for {args.messages} messages in "
                f"{seconds:.1f} s ({events / seconds:.0f} events/s, "
                f"{args.save_batch} aggregates per save)",
                flush=True,
            )
            for batch_size in batch_sizes:
                rates = [
                    timed_rebuild(service, batch_size, args.messages, events)
                    for _ in range(args.runs)
                ]
                default = " (default)" if batch_size == DEFAULT_BATCH_SIZE else ""
                label = f"postgresql rebuild, batch {batch_size}{default}"
                print(Summary.of(rates).line(label, "events/s", f"{events} events"), flush=True)
            if args.profile:
                profile_rebuild(service, batch_sizes[0], top=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
