"""``make bench``: Conversa against its baselines, measured in the same invocation.

Prints one table and writes ``bench/results.json``; each figure is the median of
alternating rounds, with its ratio to the baseline measured alongside it. See
bench/README.md for what each row means.

    python -m bench [--quick] [--only sends,webhooks,projection,list,statements] [--seconds S] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import loadgen, phase_http, phase_store, statements
from bench._db import server_url
from bench.config import HTTP_PHASES, PHASES, Config, new_run_id
from bench.report import Row, table, write_json
from bench.servers import ROOT

#: Sends per measure of the statements phase (bench/statements.py).
STATEMENT_SENDS, STATEMENT_SENDS_QUICK = 1000, 300
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
FULL = {"seconds": 10.0, "rounds": 3, "events": 1_000_000, "rows": 1_000_000, "list_seconds": 5.0}
QUICK = {"seconds": 3.0, "rounds": 2, "events": 20_000, "rows": 30_000, "list_seconds": 2.0}


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: 2 rounds of 3 s, 20,000 events, 30,000 rows (for development)",
    )
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases among {', '.join(PHASES)} (default: all)",
    )
    parser.add_argument("--seconds", type=float, help="seconds per load round (10; quick 3)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per measure (3; quick 2)")
    parser.add_argument(
        "--clients", default="1,16,64", help="concurrent clients of the send measures (1,16,64)"
    )
    parser.add_argument(
        "--webhook-clients", type=int, default=64, help="clients posting webhooks (64)"
    )
    parser.add_argument(
        "--lag-clients",
        type=int,
        help="the send load under which the read-model lag is measured (the most clients)",
    )
    parser.add_argument(
        "--batch-items", type=int, default=1000, help="messages per batch request (1000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of each server (2)")
    parser.add_argument(
        "--events", type=int, help="events rebuilt and caught up (1,000,000; quick 20,000)"
    )
    parser.add_argument(
        "--rows", type=int, help="messages in the listed store (1,000,000; quick 30,000)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="CONVERSA_LOG_LEVEL of the servers (INFO, the default a deployment runs)",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    phases = frozenset(p.strip() for p in args.only.split(",") if p.strip())
    if not phases or not phases <= set(PHASES):
        parser.error(f"--only takes phases among {', '.join(PHASES)}")
    try:
        clients = tuple(sorted({int(c) for c in args.clients.split(",") if c.strip()}))
    except ValueError:
        parser.error("--clients takes numbers such as 1,16,64")
    if not clients or min(clients) < 1:
        parser.error("--clients takes numbers such as 1,16,64")
    config = Config(
        quick=args.quick,
        seconds=args.seconds or sizes["seconds"],
        rounds=args.rounds or int(sizes["rounds"]),
        clients=clients,
        webhook_clients=args.webhook_clients,
        lag_clients=args.lag_clients or max(clients),
        batch_items=args.batch_items,
        workers=args.workers,
        events=args.events or int(sizes["events"]),
        rows=args.rows or int(sizes["rows"]),
        list_seconds=sizes["list_seconds"] if args.seconds is None else args.seconds / 2,
        log_level=args.log_level,
        phases=phases,
        output=args.output,
        run_id=new_run_id(),
    )
    if config.seconds < 1 or config.rounds < 1 or config.events < 10 or config.rows < 10:
        parser.error("--seconds and --rounds must be at least 1, --events and --rows 10")
    if not 1 <= config.batch_items <= 1000 or config.workers < 1:
        parser.error("--batch-items must be 1 to 1000, --workers at least 1")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    if config.phases & HTTP_PHASES or "list" in config.phases:
        try:
            loadgen.wrk_binary()
        except loadgen.WrkMissing as missing:
            print(f"bench: {missing}", file=sys.stderr)
            return 2
    started = datetime.now(UTC)
    header: dict[str, Any] = {
        "started": started.isoformat(),
        "machine": machine(),
        "config": describe(config),
    }
    rows: list[Row] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conversa-bench-") as directory:
        log_dir = Path(directory)
        try:
            if config.phases & HTTP_PHASES:
                rows += phase_http.run(config, log_dir)
            if config.phases & {"projection", "list"}:
                rows += phase_store.run(config, log_dir)
            if "statements" in config.phases:
                sends = STATEMENT_SENDS_QUICK if config.quick else STATEMENT_SENDS
                rows += statements.measure(config.clients, sends, config.log)
        except BaseException:
            # Keep the servers' logs: they say why.
            kept = Path(tempfile.mkdtemp(prefix="conversa-bench-logs-"))
            for log in log_dir.glob("*.log"):
                (kept / log.name).write_bytes(log.read_bytes())
            print(f"bench: failed; the servers' logs are in {kept}", file=sys.stderr)
            raise
    header["finished"] = datetime.now(UTC).isoformat()
    header["seconds"] = round(time.monotonic() - began)
    header["machine"]["load_average_after"] = os.getloadavg()
    print()
    print(f"Conversa benchmark, {started:%Y-%m-%d %H:%M} UTC, {summary(header)}")
    print(table(rows))
    write_json(config.output, header, rows)
    print(f"\nwritten to {config.output}")
    return 0


def describe(config: Config) -> dict[str, Any]:
    return {
        "quick": config.quick,
        "seconds_per_round": config.seconds,
        "rounds": config.rounds,
        "clients": list(config.clients),
        "webhook_clients": config.webhook_clients,
        "lag_clients": config.lag_clients,
        "batch_items": config.batch_items,
        "serve_workers": config.workers,
        "layout": (
            f"conversa serve --workers {config.workers} --no-worker, plus one conversa worker; "
            f"CRUD baseline: uvicorn --workers {config.workers}"
        ),
        "events": config.events,
        "rows": config.rows,
        "list_seconds": config.list_seconds,
        "log_level": config.log_level,
        "phases": sorted(config.phases),
        "driver": "log",
        "database": "PostgreSQL, a scratch database per server",
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    try:
        wrk = subprocess.run(
            [loadgen.wrk_binary(), "--version"], capture_output=True, text=True, check=False
        )
        info["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0]
    except (loadgen.WrkMissing, IndexError, OSError):
        info["wrk"] = None
    try:
        with psycopg.connect(server_url(), connect_timeout=10) as conn:
            for setting in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                row = conn.execute(f"SHOW {setting}").fetchone()
                info[f"postgresql_{setting}"] = row[0] if row else None
    except psycopg.Error as error:
        info["postgresql_error"] = str(error)
    return info


def summary(header: dict[str, Any]) -> str:
    m = header["machine"]
    before = ", ".join(f"{x:.1f}" for x in m["load_average_before"][:1])
    after = ", ".join(f"{x:.1f}" for x in m["load_average_after"][:1])
    return (
        f"{m['cpus']} CPUs, load {before} before and {after} after, PostgreSQL "
        f"{m.get('postgresql_server_version')} fsync={m.get('postgresql_fsync')}, "
        f"commit {m['commit']}{' (dirty)' if m['dirty'] else ''}, {header['seconds']} s"
    )


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()
