"""Console render times on PostgreSQL with a million messages in the store.

Seeds a scratch database with ``--messages`` messages (default 1,000,000) spread over the
last 24 hours (the seeder of :mod:`bench.seed`: templated events COPYed in, about a
minute per million), rebuilds the read model (rows, counters, hourly counters), then
times each console page through the real application in this process (Starlette's test
client, no network; a signed-in session, the console's own cookie): the time from the
request to the whole page, the median of ``--runs`` runs after one warm-up. Also times the
read-model query each messages page makes, alone.

    python -m bench.console [--messages 1000000] [--runs 7]

The target: every messages page under 300 ms server-side. Not asserted anywhere: read
the figures (BENCHMARKS.md keeps them).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import sql
from pydantic import SecretStr

from bench import seed
from bench._db import _libpq_url, _with_database, bench_settings, scratch_database, server_url
from bench._stats import quiet_logging
from bench.console_session import signed_in_client
from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.diagnosis import service_checks
from conversa.app.overview import CachedFindings, overview
from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.domain.status import Status

PAGES: tuple[tuple[str, str], ...] = (
    ("messages, first page", "/conversa/console/messages"),
    ("messages, status=failed", "/conversa/console/messages?status=failed"),
    (
        "messages, channel=whatsapp&status=delivered",
        "/conversa/console/messages?channel=whatsapp&status=delivered",
    ),
    ("messages, direction=outbound", "/conversa/console/messages?direction=outbound"),
    ("messages, driver=log", "/conversa/console/messages?driver=log"),
    ("messages, page 200 (offset 10,000)", "/conversa/console/messages?page=200"),
    ("messages, page 2000 (offset 100,000)", "/conversa/console/messages?page=2000"),
    ("messages, page 10000 (offset 500,000)", "/conversa/console/messages?page=10000"),
    (
        "messages, number (+1 (202) 555-0042)",
        "/conversa/console/messages?number=%2B1%20(202)%20555-0042",
    ),
    ("messages, number (E.164)", "/conversa/console/messages?number=%2B12025550042"),
    ("overview", "/conversa/console/overview"),
)


def time_range_page(now: datetime) -> tuple[str, str]:
    """One hour, twelve hours ago (about 42,000 messages)."""
    since = (now - timedelta(hours=12)).replace(microsecond=0, tzinfo=None).isoformat()
    until = (now - timedelta(hours=11)).replace(microsecond=0, tzinfo=None).isoformat()
    return (
        "messages, one hour's time range",
        f"/conversa/console/messages?since={since}&until={until}",
    )


QUERIES: tuple[tuple[str, MessageQuery], ...] = (
    ("first page", MessageQuery()),
    ("status=failed", MessageQuery(status="failed")),
    ("channel=whatsapp&status=delivered", MessageQuery(channel="whatsapp", status="delivered")),
    ("page 4000", MessageQuery(page=4000)),
    ("to=+12025550042", MessageQuery(to="+12025550042")),
)


def spread_messages(count: int, now: datetime) -> Iterator[seed.MessageSpec]:
    """``count`` messages evenly over the 24 hours before ``now``: one in two delivered,
    one in twenty failed, the rest sent; one in five on WhatsApp; 10,000 recipients."""
    start = now - timedelta(hours=24)
    step = timedelta(hours=24) / max(count, 1)
    for n in range(count):
        outcome = Status.FAILED if n % 20 == 19 else Status.DELIVERED if n % 2 == 0 else Status.SENT
        yield seed.MessageSpec(
            id=seed.uuid4(),
            created_at=start + step * n,
            channel="whatsapp" if n % 5 == 4 else "sms",
            to=seed.recipient(n),
            body=f"console benchmark message {n}",
            driver="log",
            outcome=outcome,
            provider_message_id=None if outcome is Status.FAILED else f"log-{seed.uuid4().hex}",
        )


def timed(call: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """Median, min and max milliseconds of ``runs`` calls after one warm-up."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="use (and keep) the database NAME, seeded only while its read model is empty, "
        "instead of a scratch database: later runs skip the seeding",
    )
    args = parser.parse_args(argv)
    with _database(args.keep) as url:
        # A console key of this run only (else a key file lands in the working directory).
        settings = bench_settings(url).model_copy(
            update={"console_secret": SecretStr(secrets.token_hex(32))}
        )
        migrate(settings)
        conninfo = PostgresBackend(url).conninfo()
        with bootstrap(settings) as service, quiet_logging():
            if service.list_messages(MessageQuery(per_page=1)).total == 0:
                _seed(service, conninfo, args.messages)
            report(service, args.runs)
    return 0


@contextlib.contextmanager
def _database(keep: str | None) -> Iterator[str]:
    if keep is None:
        with scratch_database() as url:
            yield url
        return
    base = server_url()
    with psycopg.connect(_libpq_url(base), autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (keep,)).fetchone()
        if found is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(keep)))
    yield _with_database(base, keep)


def _seed(service: ConversaService, conninfo: str, messages: int) -> None:
    print(f"seeding {messages:,} messages over the last 24 hours ...", flush=True)
    started = time.perf_counter()
    events = seed.EventCopier(service.app, conninfo).copy(
        spread_messages(messages, datetime.now(UTC))
    )
    seeded = time.perf_counter()
    print(f"  {events:,} events in {seeded - started:.0f} s", flush=True)
    service.projector().rebuild()
    print(f"  read model rebuilt in {time.perf_counter() - seeded:.0f} s", flush=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def report(service: ConversaService, runs: int) -> None:
    """The figures, printed as they come."""
    rows = service.list_messages(MessageQuery(per_page=1)).total
    hours = overview(service).totals
    print(
        f"\n{rows:,} rows in conversa_messages; last 24 h: {hours.sent:,} sent, "
        f"{hours.delivered:,} delivered, {hours.failed:,} failed"
    )
    print(f"\nread-model list queries alone (median of {runs}, ms):")
    for label, query in QUERIES:
        median, low, high = timed(partial(service.list_messages, query), runs)
        print(f"  {label:<45} {median:7.1f}   (min {low:.1f}, max {high:.1f})", flush=True)
    cached = CachedFindings()
    for label, call in (
        ("overview data, diagnose's checks run", lambda: overview(service)),
        ("overview data, checks cached (the page's)", lambda: overview(service, findings=cached)),
        ("  of which the hourly counters", lambda: service.view.hourly(0)),
        ("  of which diagnose's checks", lambda: service_checks(service)),
    ):
        median, low, high = timed(call, runs)
        print(f"  {label:<45} {median:7.1f}   (min {low:.1f}, max {high:.1f})", flush=True)

    print(f"\nconsole pages, server-side, in-process (median of {runs}, ms):")
    with signed_in_client(service, f"bench-operator-{secrets.token_hex(4)}") as client:
        for label, path in (*PAGES, time_range_page(datetime.now(UTC))):

            def get(path: str = path) -> object:
                response = client.get(path)
                if response.status_code != 200:
                    msg = f"{path}: HTTP {response.status_code}"
                    raise RuntimeError(msg)
                return response

            median, low, high = timed(get, runs)
            # The rows it showed: a page that only says what was wrong would be fast too.
            rows = client.get(path).text.count("<tr data-id=")
            print(
                f"  {label:<45} {median:7.1f}   (min {low:.1f}, max {high:.1f}), {rows} rows",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
