"""What one send costs PostgreSQL: statements, commits and WAL fsyncs per send.

Runs on a private PostgreSQL cluster made for the purpose (``initdb`` in a temporary
directory, removed afterwards), so that nothing else's work is counted: ``fsync`` and
``synchronous_commit`` on, as deployed, every statement logged, autovacuum off.

- Conversa: ``ConversaService.send`` in this process (the ``log`` driver), from 1 and
  more threads at once, each send with its own idempotency key: the request path only
  (the projection of a worker writes on its own, in batches).
- The baseline: what the CRUD service of the benchmark does per send, from as many
  threads: ``INSERT`` the row and ``UPDATE`` it to sent, each its own transaction.

Per send: statements (lines of ``log_statement=all`` for the database: simple queries
and every execution of an extended-protocol one, ``BEGIN``/``COMMIT``/``LOCK``/``NOTIFY``
included; psycopg_pool's pre-ping is an empty query, which is not logged), commits
(``pg_stat_database.xact_commit``, read-only ones included) and WAL fsyncs
(``pg_stat_wal.wal_sync``, the whole cluster's: the WAL writer's too). Conversa's figures
include starting and closing one service (its few start-up checks), spread over the sends.

    python -m bench.statements [--sends 400] [--clients 1,16,64]

``make bench`` runs it as the ``statements`` phase.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.report import Figure, Row
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from conversa.app.settings import Settings

PG_BIN_VARIABLE = "CONVERSA_BENCH_PG_BIN"
SERVER_USER = "postgres"  # initdb and postgres refuse to run as root
WARMUP = 20


@dataclass(frozen=True, slots=True)
class Costs:
    """Per send."""

    statements: float
    commits: float
    fsyncs: float
    wal_writes: float


def _pg_bin() -> Path:
    configured = os.environ.get(PG_BIN_VARIABLE)
    if configured:
        return Path(configured)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], check=True, capture_output=True, text=True
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    msg = f"PostgreSQL's initdb not found: set {PG_BIN_VARIABLE} to the directory holding it"
    raise RuntimeError(msg)


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    """A running cluster of its own, logging every statement to ``server.log`` beside
    its data directory; yields the URL of its ``postgres`` database."""
    bindir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="conversa-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER)
    data, port = root / "data", _free_port()

    def run(command: list[str]) -> None:
        subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=120)

    try:
        run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c synchronous_commit=on -c autovacuum=off "
            "-c log_statement=all -c log_line_prefix=@%d@"
        )
        log = str(root / "server.log")
        run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"])
        try:
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _LOG_PATHS[url] = log
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            yield url
        finally:
            run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Counters:
    """The cluster's counters, read when every backend that did the work has exited
    (a backend reports its statistics when idle for a while, or when it exits)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.log = Path(_log_path(admin_url))

    def snapshot(self) -> tuple[int, int, int, int]:
        """Commits of ``bench``, WAL fsyncs and writes, and statements logged so far."""
        threading.Event().wait(1.0)  # let exited backends' statistics land
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = 'bench'"
            ).fetchone()
            wal = conn.execute("SELECT wal_sync, wal_write FROM pg_stat_wal").fetchone()
        assert row is not None and wal is not None
        return int(row[0]), int(wal[0]), int(wal[1]), _statements_logged(self.log)

    @staticmethod
    def costs(
        before: tuple[int, int, int, int], after: tuple[int, int, int, int], sends: int
    ) -> Costs:
        commits, fsyncs, writes, statements = (b - a for a, b in zip(before, after, strict=True))
        return Costs(
            statements=statements / sends,
            commits=commits / sends,
            fsyncs=fsyncs / sends,
            wal_writes=writes / sends,
        )


_LOG_PATHS: dict[str, str] = {}


def _log_path(admin_url: str) -> str:
    return _LOG_PATHS[admin_url]


def _statements_logged(log: Path) -> int:
    """Statements the ``bench`` database executed: simple queries and executions of
    extended-protocol ones alike (a pipeline's too)."""
    count = 0
    with log.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("@bench@") and (
                "LOG:  statement: " in line or "LOG:  execute " in line
            ):
                count += 1
    return count


def _in_threads(clients: int, sends: int, send: Callable[[int], None]) -> None:
    numbers = iter(range(sends))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            try:
                send(n)
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def conversa_costs(admin_url: str, clients: int, sends: int) -> Costs:
    url = admin_url.rsplit("/", 1)[0] + f"/bench?schema=c_{uuid.uuid4().hex[:8]}"
    settings = Settings.from_environ(
        {
            "CONVERSA_DATABASE_URL": url,
            "CONVERSA_SMS_DRIVER": "log",
            "CONVERSA_WHATSAPP_DRIVER": "log",
        }
    )
    migrate(settings)
    counters = Counters(admin_url)
    run = uuid.uuid4().hex[:8]

    def sending(service: ConversaService) -> Callable[[int], None]:
        def send(n: int) -> None:
            service.send(
                "sms", "+15551234567", {"body": f"n{n}"}, {"idempotency_key": f"{run}-{n}"}
            )

        return send

    # A first service warms up (imports, the token of nothing, the first connections);
    # counted are the start of a second one (its few checks), its sends, and its close.
    with bootstrap(settings) as service:
        _in_threads(clients, WARMUP, lambda n: sending(service)(-1 - n))
    before = counters.snapshot()
    with bootstrap(settings) as service:
        _in_threads(clients, sends, sending(service))
    return counters.costs(before, counters.snapshot(), sends)


def baseline_costs(admin_url: str, clients: int, sends: int) -> Costs:
    url = admin_url.rsplit("/", 1)[0] + "/bench"
    table = f"crud_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id uuid PRIMARY KEY, idempotency_key text UNIQUE, "
            "channel text, recipient text, body text, status text, "
            "created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())"
        )
    connections = [psycopg.connect(url, autocommit=True) for _ in range(clients)]
    local = threading.local()
    pool = iter(connections)
    pool_lock = threading.Lock()

    def send(n: int) -> None:
        if not hasattr(local, "conn"):
            with pool_lock:
                local.conn = next(pool)
        conn = local.conn
        message_id = uuid.uuid4()
        conn.execute(
            f"INSERT INTO {table} (id, idempotency_key, channel, recipient, body, status) "
            "VALUES (%s, %s, 'sms', '+15551234567', %s, 'queued')",
            (message_id, f"k{n}-{message_id}", f"n{n}"),
        )
        conn.execute(
            f"UPDATE {table} SET status = 'sent', updated_at = now() WHERE id = %s",
            (message_id,),
        )

    counters = Counters(admin_url)
    try:
        before = counters.snapshot()
        _in_threads(clients, sends, send)
    finally:
        for conn in connections:
            conn.close()
    return counters.costs(before, counters.snapshot(), sends)


def measure(clients: Sequence[int], sends: int, log: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    logging.disable(logging.CRITICAL)  # the log driver logs every send
    try:
        with private_cluster() as admin_url:
            for count in clients:
                mine = conversa_costs(admin_url, count, sends)
                base = baseline_costs(admin_url, count, sends)
                log(f"[statements] {count} clients: Conversa {mine}; baseline {base}")
                for key, label, unit in (
                    ("statements", "statements per send", "stmts/send"),
                    ("commits", "commits per send", "commits/send"),
                    ("fsyncs", "WAL fsyncs per send", "fsyncs/send"),
                ):
                    rows.append(
                        Row(
                            key=f"statements.{key}.{count}",
                            label=f"{label}, {count} client{'s' if count > 1 else ''}",
                            unit=unit,
                            conversa=Figure(value=getattr(mine, key), detail=_detail(mine)),
                            baseline=Figure(value=getattr(base, key), detail=_detail(base)),
                            baseline_label="CRUD: INSERT, then UPDATE, each its own transaction",
                        )
                    )
    finally:
        logging.disable(logging.NOTSET)
    return rows


def _detail(costs: Costs) -> dict[str, float]:
    return {
        "statements": round(costs.statements, 3),
        "commits": round(costs.commits, 3),
        "fsyncs": round(costs.fsyncs, 3),
        "wal_writes": round(costs.wal_writes, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__)
    parser.add_argument("--sends", type=int, default=400, help="sends per measure (400)")
    parser.add_argument("--clients", default="1,16,64", help="threads sending at once (1,16,64)")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    from bench.report import table

    rows = measure(clients, args.sends, lambda line: print(line, file=sys.stderr, flush=True))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
