"""Sends and webhook reports over HTTP, Conversa against the CRUD baseline.

One Conversa (``conversa serve --workers N --no-worker`` and one ``conversa worker``) and
one CRUD baseline (the same uvicorn workers) run side by side, each on its own scratch
database; wrk loads one of them at a time, in alternating rounds. After a Conversa round
the next one waits until the worker's projection has caught up (and, after a
respond-async round, until the dispatcher has sent everything), so that no round pays
for the previous one's background work.
"""

from __future__ import annotations

import secrets
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg import sql

from bench import crud_baseline, loadgen, probes, seed
from bench._db import bench_settings, scratch_database
from bench.config import Config
from bench.loadgen import LoadResult
from bench.report import Figure, Row
from bench.servers import RssSampler, Server, free_port, running, start_conversa, start_crud
from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.settings import Settings

SEND_PATH = "/conversa/messages"
BATCH_PATH = "/conversa/messages/batch"
CRUD_SEND_PATH = "/messages"
MODES = ("sync", "async", "batch")
MODE_LABELS = {
    "sync": "send",
    "async": "send, respond-async",
    "batch": "send, batch of {items}",
}


@dataclass
class Target:
    """One server under load and what it takes."""

    server: Server
    token: str
    conninfo: str | None = None  # Conversa's database, to wait for its worker


def run(config: Config, log_dir: Path) -> list[Row]:
    twilio_token = secrets.token_hex(16)
    crud_token = secrets.token_urlsafe(24)
    conversa_port, crud_port = free_port(), free_port()
    with scratch_database() as conversa_url, scratch_database() as crud_url:
        settings = bench_settings(conversa_url)
        migrate(settings)
        crud_baseline.migrate(crud_url)
        conninfo = PostgresBackend(conversa_url).conninfo()
        with bootstrap(settings) as service:
            _info, token = service.tokens.create("bench")
        conversa_env = {
            "CONVERSA_DATABASE_URL": conversa_url,
            "CONVERSA_SMS_DRIVER": "log",
            "CONVERSA_WHATSAPP_DRIVER": "log",
            "CONVERSA_RATE_LIMIT": "1000000/second",
            "CONVERSA_WEBHOOK_BASE_URL": f"http://127.0.0.1:{conversa_port}",
            "CONVERSA_TWILIO_TOKEN": twilio_token,
            "CONVERSA_LOG_LEVEL": config.log_level,
        }
        crud_env = {
            crud_baseline.DATABASE_URL_VARIABLE: crud_url,
            crud_baseline.TOKEN_VARIABLE: crud_token,
            crud_baseline.WEBHOOK_BASE_URL_VARIABLE: f"http://127.0.0.1:{crud_port}",
            crud_baseline.TWILIO_TOKEN_VARIABLE: twilio_token,
        }
        config.log(f"[http] starting Conversa ({config.workers} serve workers + 1 worker)")
        conversa = start_conversa(
            conversa_env, port=conversa_port, workers=config.workers, log_dir=log_dir
        )
        with running(conversa):
            config.log(f"[http] starting the CRUD baseline ({config.workers} workers)")
            crud = start_crud(crud_env, port=crud_port, workers=config.workers, log_dir=log_dir)
            with running(crud), RssSampler([conversa, crud]) as rss:
                mine = Target(conversa, token, conninfo)
                theirs = Target(crud, crud_token)
                rows: list[Row] = []
                if "sends" in config.phases:
                    rows += _sends(config, mine, theirs, rss)
                if "webhooks" in config.phases:
                    rows += _webhooks(
                        config, mine, theirs, rss, log_dir, twilio_token, settings, crud_url
                    )
                rows.append(_memory(rss))
                return rows


def _sends(config: Config, mine: Target, theirs: Target, rss: RssSampler) -> list[Row]:
    available = {
        "sync": probes.Availability(True),
        "async": probes.probe_async(mine.server.url, mine.token),
        "batch": probes.probe_batch(mine.server.url, mine.token),
    }
    for mode, availability in available.items():
        if not availability.available:
            config.log(f"[sends] {mode}: not available ({availability.reason})")
    probes.wait_projected(_conninfo(mine))
    rows = []
    for clients in config.clients:
        measured: dict[str, list[LoadResult]] = {"crud": [], "sync": [], "async": [], "batch": []}
        drains: list[float] = []
        drain_problems: list[str] = []
        lags: list[float] = []
        lag_failures = 0
        for round_number in range(config.rounds):
            order = ["crud", *(mode for mode in MODES if available[mode].available)]
            if round_number % 2:
                order.reverse()
            for name in order:
                probe = None
                if name == "sync" and clients == config.lag_clients:
                    probe = probes.LagProbe(mine.server.url, mine.token, _conninfo(mine))
                started = time.monotonic()
                with rss.sampling():
                    if probe is not None:
                        with probe:
                            result = _send_round(config, name, mine, theirs, clients)
                        lags += probe.lags_ms
                        lag_failures += probe.failures
                    else:
                        result = _send_round(config, name, mine, theirs, clients)
                measured[name].append(result)
                config.log(
                    f"[sends] {_clients(clients)}, round {round_number + 1}/{config.rounds}: "
                    f"{_describe(name, config)} {result.rate:,.0f} msgs/s, "
                    f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
                    + (
                        f" ({result.failures} failed: {result.describe_failures()})"
                        if result.failures
                        else ""
                    )
                )
                if name != "crud":
                    # Requests wrk gave up on at the end of the round (a batch of 1,000
                    # can outlast it) still run in the server: let them finish first.
                    probes.wait_quiet(_conninfo(mine))
                if name == "batch":
                    # What the batches queued is sent before the next round, which must
                    # not share the machine with it (nor count it as its own drain).
                    try:
                        probes.wait_drained(_conninfo(mine))
                    except TimeoutError as error:
                        drain_problems.append(str(error))
                    probes.wait_projected(_conninfo(mine))
                elif name == "async" and result.items:
                    try:
                        drained = probes.wait_drained(_conninfo(mine))
                    except TimeoutError as error:
                        drain_problems.append(str(error))
                    else:
                        drains.append(result.items / (drained - started))
                    probes.wait_projected(_conninfo(mine))
                elif name != "crud":
                    probes.wait_projected(_conninfo(mine))
                (mine if name != "crud" else theirs).server.check_alive()
        baseline = _figure(measured["crud"])
        for mode in MODES:
            label = f"{MODE_LABELS[mode].format(items=config.batch_items)}, {_clients(clients)}"
            row = Row(
                key=f"sends.{mode}.c{clients}",
                label=label,
                unit="msgs/s",
                baseline=baseline,
                baseline_label="CRUD send",
            )
            if not available[mode].available:
                row.note = f"not available: {available[mode].reason}"
            else:
                row.conversa = _figure(measured[mode])
                row.note = _failure_note(measured[mode])
            rows.append(row)
            if mode == "async" and available[mode].available:
                rows.append(
                    Row(
                        key=f"sends.async_drain.c{clients}",
                        label=f"respond-async accepted and sent, {_clients(clients)}",
                        unit="msgs/s",
                        conversa=Figure.of_rounds(drains) if drains else None,
                        baseline=baseline,
                        baseline_label="CRUD send",
                        note="; ".join(drain_problems),
                    )
                )
        if clients == config.lag_clients:
            rows.append(_lag_row(clients, lags, lag_failures, measured["sync"]))
    return rows


def _send_round(
    config: Config, name: str, mine: Target, theirs: Target, clients: int
) -> LoadResult:
    run_id = f"{config.run_id}-{uuid.uuid4().hex[:6]}"
    if name == "crud":
        args = [CRUD_SEND_PATH, theirs.token, run_id, "sync"]
        return loadgen.run(
            "send", theirs.server.url, connections=clients, seconds=config.seconds, args=args
        )
    if name == "batch":
        args = [BATCH_PATH, mine.token, run_id, str(config.batch_items)]
        return loadgen.run(
            "batch", mine.server.url, connections=clients, seconds=config.seconds, args=args
        )
    args = [SEND_PATH, mine.token, run_id, name]
    return loadgen.run(
        "send", mine.server.url, connections=clients, seconds=config.seconds, args=args
    )


def _lag_row(clients: int, lags: list[float], failures: int, sync: list[LoadResult]) -> Row:
    row = Row(
        key=f"lag.sync.c{clients}",
        label=f"read-model lag under sync sends, {_clients(clients)}",
        unit="ms p99",
    )
    if len(lags) >= 2:
        ordered = sorted(lags)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        row.conversa = Figure(
            value=p99,
            p50_ms=statistics.median(ordered),
            p99_ms=p99,
            detail={
                "probes": len(lags),
                "send_rate": statistics.median(r.rate for r in sync) if sync else None,
            },
        )
        row.note = (
            f"{len(lags)} probe sends during the sync rounds at "
            f"{statistics.median(r.rate for r in sync):,.0f} msgs/s; no baseline (a CRUD "
            "service reads what it wrote)"
        )
    else:
        row.note = "too few probe sends completed"
    if failures:
        row.note += f"; {failures} probes failed or timed out"
    return row


def _webhooks(
    config: Config,
    mine: Target,
    theirs: Target,
    rss: RssSampler,
    log_dir: Path,
    twilio_token: str,
    settings: Settings,
    crud_url: str,
) -> list[Row]:
    count = config.webhook_pool
    config.log(f"[webhooks] seeding {count:,} sent Twilio messages on each side")
    specs = list(seed.twilio_messages(count))
    with bootstrap(settings) as service:
        seed.EventCopier(service.app, _conninfo(mine)).copy(specs)
    account = "AC" + secrets.token_hex(16)
    replays = {
        "conversa": loadgen.ReplayFile(
            log_dir / "conversa-reports.tsv",
            (
                _signed_line(
                    mine.server.url,
                    f"/conversa/webhooks/twilio?message_id={spec.id}",
                    twilio_token,
                    account,
                    spec.provider_message_id,
                    spec.to,
                )
                for spec in specs
            ),
        ),
        "crud": loadgen.ReplayFile(
            log_dir / "crud-reports.tsv",
            (
                _signed_line(
                    theirs.server.url,
                    f"/reports?message_id={message_id}",
                    twilio_token,
                    account,
                    f"SM{uuid.uuid4().hex}",
                    seed.recipient(n),
                )
                for n, message_id in enumerate(crud_baseline.seed_sent(crud_url, count))
            ),
        ),
    }
    del specs
    waited = probes.wait_projected(_conninfo(mine))
    config.log(f"[webhooks] the worker projected the seeded messages in {waited:.0f} s")
    clients = config.webhook_clients
    measured: dict[str, list[LoadResult]] = {"conversa": [], "crud": []}
    for round_number in range(config.rounds):
        order = ["crud", "conversa"] if round_number % 2 == 0 else ["conversa", "crud"]
        for name in order:
            target = mine if name == "conversa" else theirs
            with rss.sampling():
                result = replays[name].run(
                    target.server.url, connections=clients, seconds=config.seconds
                )
            measured[name].append(result)
            config.log(
                f"[webhooks] round {round_number + 1}/{config.rounds}: {name} "
                f"{result.rate:,.0f} reports/s, p50 {result.p50_ms:.1f} ms, "
                f"p99 {result.p99_ms:.1f} ms"
            )
            if name == "conversa":
                probes.wait_projected(_conninfo(mine))
    row = Row(
        key=f"webhooks.twilio.c{clients}",
        label=f"webhook reports (signed Twilio), {_clients(clients)}",
        unit="reports/s",
        conversa=_figure(measured["conversa"]),
        baseline=_figure(measured["crud"]),
        baseline_label="CRUD report: signature check and one UPDATE",
        note=_failure_note(measured["conversa"]),
    )
    notes = [row.note] if row.note else []
    if any(replay.reused for replay in replays.values()):
        notes.append(f"more than the {count:,} seeded reports were needed: some were sent twice")
    else:
        # Every report answered 200 must have moved its message to delivered.
        for key, name, conninfo, table in (
            ("conversa", "Conversa", _conninfo(mine), "conversa_messages"),
            ("crud", "the baseline", crud_url, "messages"),
        ):
            answered = sum(r.statuses.get(200, 0) for r in measured[key])
            applied = _delivered(conninfo, table)
            if applied < answered:
                notes.append(f"{name} answered {answered:,} reports but delivered {applied:,}")
    row.note = "; ".join(notes)
    return [row]


def _signed_line(
    base_url: str, path: str, token: str, account: str, sid: str | None, to: str
) -> str:
    form = [
        ("AccountSid", account),
        ("ApiVersion", "2010-04-01"),
        ("From", "+12025550100"),
        ("MessageSid", sid or ""),
        ("MessageStatus", "delivered"),
        ("SmsSid", sid or ""),
        ("SmsStatus", "delivered"),
        ("To", to),
    ]
    signature = crud_baseline.twilio_signature(token, base_url + path, form)
    return f"{path}\t{signature}\t{urlencode(form)}\n"


def _memory(rss: RssSampler) -> Row:
    mine, theirs = rss.peak.get("conversa"), rss.peak.get("crud")
    return Row(
        key="memory.serve",
        label="resident memory of one serve process under load (peak)",
        unit="MiB",
        conversa=None if mine is None else Figure(value=mine),
        baseline=None if theirs is None else Figure(value=theirs),
        baseline_label="CRUD worker process",
        note="" if mine is not None else "not sampled",
    )


def _figure(results: list[LoadResult]) -> Figure:
    return Figure.of_rounds(
        [r.rate for r in results],
        [r.p50_ms for r in results],
        [r.p99_ms for r in results],
        requests=[r.requests for r in results],
        items=[r.items for r in results],
        failures=[r.failures for r in results],
    )


def _failure_note(results: list[LoadResult]) -> str:
    failed = [r for r in results if r.failures]
    if not failed:
        return ""
    return "; ".join(
        f"{r.failures} of {r.requests} failed ({r.describe_failures()})" for r in failed
    )


def _describe(name: str, config: Config) -> str:
    if name == "crud":
        return "CRUD baseline"
    return "Conversa " + MODE_LABELS[name].format(items=config.batch_items)


def _clients(n: int) -> str:
    return "1 client" if n == 1 else f"{n} clients"


def _delivered(conninfo: str, table: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE status = 'delivered'").format(
                sql.Identifier(table)
            )
        ).fetchone()
    return int(row[0]) if row else 0


def _conninfo(target: Target) -> str:
    assert target.conninfo is not None
    return target.conninfo
