"""The projection (rebuild, catch-up) and the list endpoint at a million messages.

One scratch database is seeded (bench.seed: COPY of the events the domain records) with
``events`` events, and the read model is rebuilt in this process, ``rounds`` times. Then
``events`` more are seeded, in ``rounds`` slices, each caught up after it is stored. Both
are compared with a *floor* measured on the same events in alternation: the same pages
read from the event store and one row per message upserted into a copy of
``conversa_messages`` (same columns and indexes), without decoding any event: what the
database must do anyway.

Then the store is topped up to ``rows`` messages, ``conversa serve`` (no worker) serves it,
and wrk with one connection lists pages 1 to 10 for each filter; the baseline is the CRUD
service's list, ``count(*)`` included, over as many rows spread the same way.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench import crud_baseline, loadgen, seed
from bench._db import bench_settings, scratch_database
from bench._stats import quiet_logging
from bench.config import LIST_FILTERS, Config
from bench.loadgen import LoadResult
from bench.report import Figure, Row
from bench.servers import free_port, running, start_conversa, start_crud
from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projector import DEFAULT_BATCH_SIZE
from conversa.app.service import ConversaService

EVENTS_PER_MESSAGE = 2.5
FLOOR_TABLE = "bench_projection_floor"
LIST_PATH = "/conversa/messages"
CRUD_LIST_PATH = "/messages"


def run(config: Config, log_dir: Path) -> list[Row]:
    rows: list[Row] = []
    with scratch_database() as url, scratch_database() as crud_url:
        settings = bench_settings(url)
        migrate(settings)
        conninfo = PostgresBackend(url).conninfo()
        with bootstrap(settings) as service, quiet_logging():
            copier = seed.EventCopier(service.app, conninfo)
            messages = math.ceil(config.events / EVENTS_PER_MESSAGE)
            base = seed.default_base(max(config.rows, 3 * messages))
            seeded = _seed(config, copier, seed.log_messages(messages, base=base), "rebuild")
            if "projection" in config.phases:
                rows.append(_rebuild(config, service, conninfo, seeded))
                rows.append(_catch_up(config, service, copier, conninfo, messages, base))
            else:
                service.projector().rebuild()
            total = _row_count(conninfo)
            if "list" in config.phases:
                if total < config.rows:
                    more = seed.log_messages(config.rows - total, start=total, base=base)
                    _seed(config, copier, more, "list")
                    service.projector().catch_up()
                _analyze(conninfo)
                _info, token = service.tokens.create("bench")
        if "list" in config.phases:
            rows += _lists(config, log_dir, url, crud_url, token)
    return rows


def _seed(config: Config, copier: seed.EventCopier, specs: Any, purpose: str) -> int:
    started = time.perf_counter()
    events = copier.copy(specs)
    seconds = time.perf_counter() - started
    config.log(
        f"[store] seeded {events:,} events for the {purpose} in {seconds:.0f} s "
        f"({events / seconds:,.0f} events/s, COPY)"
    )
    return events


def _head(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT coalesce(max(notification_id), 0) FROM conversa_events"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _row_count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM conversa_messages").fetchone()
    assert row is not None
    return int(row[0])


def _analyze(conninfo: str) -> None:
    # What autovacuum does soon after a bulk load; the baseline's table gets the same.
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE conversa_messages")


def _rebuild(config: Config, service: ConversaService, conninfo: str, events: int) -> Row:
    mine: list[float] = []
    floor: list[float] = []
    head = _head(conninfo)
    for round_number in range(config.rounds):
        steps: list[tuple[str, Callable[[], float]]] = [
            ("conversa", lambda: _timed_rebuild(service, events)),
            ("floor", lambda: events / _floor(conninfo, 0, head, reset=True)),
        ]
        if round_number % 2:
            steps.reverse()
        for name, step in steps:
            rate = step()
            (mine if name == "conversa" else floor).append(rate)
            config.log(
                f"[projection] rebuild round {round_number + 1}/{config.rounds}: "
                f"{name} {rate:,.0f} events/s"
            )
    return Row(
        key="projection.rebuild",
        label=f"projection rebuild, {events:,} events",
        unit="events/s",
        conversa=Figure.of_rounds(mine),
        baseline=Figure.of_rounds(floor),
        baseline_label="floor: same pages read, one row per message upserted, no decoding",
    )


def _timed_rebuild(service: ConversaService, events: int) -> float:
    projector = service.projector()
    started = time.perf_counter()
    applied = projector.rebuild()
    seconds = time.perf_counter() - started
    if applied != events or projector.status().lag:
        msg = f"the rebuild applied {applied} of {events} events"
        raise AssertionError(msg)
    return applied / seconds


def _catch_up(
    config: Config,
    service: ConversaService,
    copier: seed.EventCopier,
    conninfo: str,
    first: int,
    base: datetime,
) -> Row:
    mine: list[float] = []
    floor: list[float] = []
    slice_messages = math.ceil(first / config.rounds)
    total_events = 0
    for round_number in range(config.rounds):
        start = _head(conninfo)
        specs = seed.log_messages(
            slice_messages, start=first + round_number * slice_messages, base=base
        )
        events = copier.copy(specs)
        total_events += events
        stop = _head(conninfo)
        projector = service.projector()
        steps: list[tuple[str, Callable[[], float]]] = [
            ("conversa", partial(_timed, projector.catch_up)),
            ("floor", partial(_floor, conninfo, start, stop, reset=False)),
        ]
        if round_number % 2:
            steps.reverse()
        for name, step in steps:
            rate = events / step()
            (mine if name == "conversa" else floor).append(rate)
            config.log(
                f"[projection] catch-up round {round_number + 1}/{config.rounds} "
                f"({events:,} new events): {name} {rate:,.0f} events/s"
            )
        if projector.status().lag:
            msg = "the catch-up left events behind"
            raise AssertionError(msg)
    return Row(
        key="projection.catch_up",
        label=f"projection catch-up, {total_events:,} events"
        + (f" in {config.rounds} slices" if config.rounds > 1 else ""),
        unit="events/s",
        conversa=Figure.of_rounds(mine),
        baseline=Figure.of_rounds(floor),
        baseline_label="floor: same pages read, one row per message upserted, no decoding",
    )


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _floor(conninfo: str, start: int, stop: int, *, reset: bool) -> float:
    """Seconds to page through events (start, stop] as the projector does and upsert one
    row per message into a copy of conversa_messages, without decoding anything."""
    table = sql.Identifier(FLOOR_TABLE)
    columns = (
        "id",
        "direction",
        "channel",
        "recipient",
        "driver",
        "status",
        "provider_message_id",
        "attempts",
        "meta",
        "created_at",
        "updated_at",
        "version",
    )
    upsert = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {set}"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        set=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
        ),
    )
    with psycopg.connect(conninfo) as conn:
        if reset:
            with conn.transaction():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
                conn.execute(
                    sql.SQL("CREATE TABLE {} (LIKE conversa_messages INCLUDING ALL)").format(table)
                )
        now = datetime.now(UTC)
        position = start
        started = time.perf_counter()
        while position < stop:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(
                    "SELECT originator_id, originator_version, topic, state, notification_id "
                    "FROM conversa_events WHERE notification_id > %s "
                    "AND notification_id <= %s ORDER BY notification_id LIMIT %s",
                    (position, stop, DEFAULT_BATCH_SIZE),
                )
                events = cursor.fetchall()
                if not events:
                    break
                latest = {event[0]: event[1] for event in events}  # originator: version
                cursor.execute(
                    sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(table), (list(latest),)
                )
                cursor.fetchall()
                cursor.executemany(
                    upsert,
                    [
                        (
                            originator,
                            "outbound",
                            "sms",
                            "+12025550000",
                            "log",
                            "sent",
                            "log-x",
                            1,
                            Jsonb({}),
                            now,
                            now,
                            version,
                        )
                        for originator, version in latest.items()
                    ],
                )
                position = events[-1][4]
        return time.perf_counter() - started


def _lists(config: Config, log_dir: Path, url: str, crud_url: str, token: str) -> list[Row]:
    total = _row_count(PostgresBackend(url).conninfo())
    config.log(f"[list] seeding the CRUD baseline with {total:,} rows")
    crud_baseline.seed_list(crud_url, total)
    crud_token = secrets.token_urlsafe(24)
    conversa_port, crud_port = free_port(), free_port()
    environ = {
        "CONVERSA_DATABASE_URL": url,
        "CONVERSA_RATE_LIMIT": "1000000/second",
        "CONVERSA_LOG_LEVEL": config.log_level,
    }
    conversa = start_conversa(
        environ,
        port=conversa_port,
        workers=config.workers,
        log_dir=log_dir,
        name="conversa-list",
        worker=False,
    )
    with running(conversa):
        crud = start_crud(
            {
                crud_baseline.DATABASE_URL_VARIABLE: crud_url,
                crud_baseline.TOKEN_VARIABLE: crud_token,
            },
            port=crud_port,
            workers=config.workers,
            log_dir=log_dir,
            name="crud-list",
        )
        with running(crud):
            measured: dict[tuple[str, str], list[LoadResult]] = {}
            for round_number in range(config.rounds):
                for filter_name, query in LIST_FILTERS:
                    order = [
                        ("conversa", conversa.url, LIST_PATH, token),
                        ("crud", crud.url, CRUD_LIST_PATH, crud_token),
                    ]
                    if round_number % 2:
                        order.reverse()
                    for name, server_url, path, secret in order:
                        result = loadgen.run(
                            "list",
                            server_url,
                            connections=1,
                            seconds=config.list_seconds,
                            args=[path, secret, query],
                        )
                        measured.setdefault((name, filter_name), []).append(result)
                        config.log(
                            f"[list] round {round_number + 1}/{config.rounds}, filter "
                            f"{filter_name}: {name} p50 {result.p50_ms:.1f} ms, "
                            f"p99 {result.p99_ms:.1f} ms"
                            + (f" ({result.failures} failed)" if result.failures else "")
                        )
    rows = []
    for filter_name, query in LIST_FILTERS:
        mine, theirs = measured[("conversa", filter_name)], measured[("crud", filter_name)]
        failed = sum(r.failures for r in mine)
        rows.append(
            Row(
                key=f"list.{filter_name}",
                label=f"list {unquote(query) or '(no filter)'}, pages 1-10, {total:,} rows",
                unit="ms p99",
                conversa=_latency(mine),
                baseline=_latency(theirs),
                baseline_label="CRUD list with count(*)",
                note=f"{failed} requests failed" if failed else "",
            )
        )
    return rows


def _latency(results: list[LoadResult]) -> Figure:
    figure = Figure.of_rounds(
        [r.p99_ms for r in results],
        [r.p50_ms for r in results],
        [r.p99_ms for r in results],
        lists_per_second=[round(r.rate, 1) for r in results],
    )
    return figure
