"""How many PostgreSQL connections one ``conversa serve`` or ``conversa worker`` process
holds, idle and under load: the figures behind the README's pool sizing.

Each layout runs as a real process on a scratch database. Its connections are the rows of
``pg_stat_activity`` whose client port belongs to the process or its children (``ss
-tnp``, Linux). Idle: 3 s of samples after start-up; under load: the peak over 8 s while
64 HTTP clients send and list (servers) or 4 threads of another process send (workers,
whose load is projecting, dispatching and handing events over); after: 3 s later.

    python -m bench.connections
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import psycopg

from bench._db import _libpq_url, bench_settings, scratch_database, server_url
from bench._stats import quiet_logging
from conversa.app.bootstrap import bootstrap, migrate

#: Two subscribers that accept any event and do nothing with it.
SUBSCRIBERS = {"CONVERSA_SUBSCRIBERS": "json:dumps,json:loads"}


@dataclass(frozen=True)
class Layout:
    label: str
    args: tuple[str, ...]
    env: dict[str, str]
    standby: bool = False  # another worker holds the locks first

    @property
    def serves(self) -> bool:
        return self.args[0] == "serve"


LAYOUTS = [
    Layout("serve --no-worker", ("serve", "--no-worker"), {}),
    Layout("serve --workers 2 --no-worker", ("serve", "--no-worker", "--workers", "2"), {}),
    Layout("serve (with its worker)", ("serve",), {}),
    Layout("worker (holds the projection)", ("worker",), {}),
    Layout("worker, 2 subscribers", ("worker",), SUBSCRIBERS),
    Layout("worker standing by", ("worker",), {}, standby=True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_ports(pid: int) -> list[int]:
    """Local ports of the process's (and its children's) connections to PostgreSQL."""
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    pids = {pid, *map(int, children)}
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", "( dport = :5432 )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [
        int(line.split()[2].rsplit(":", 1)[1])
        for line in listing.splitlines()
        if any(f"pid={p}," in line for p in pids)
    ]


def connections(database: str, pid: int) -> int:
    with psycopg.connect(_libpq_url(server_url()), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND client_port = ANY(%s)",
            (database, client_ports(pid)),
        ).fetchone()
    return int(row[0]) if row else 0


def peak(database: str, pid: int, seconds: float) -> int:
    highest, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        highest = max(highest, connections(database, pid))
        time.sleep(0.05)
    return highest


def conversa(url: str, args: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    environ.update({"CONVERSA_DATABASE_URL": url, "CONVERSA_LOG_LEVEL": "WARNING", **env})
    return subprocess.Popen(
        [sys.executable, "-m", "conversa", *args],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def load(url: str, port: int, token: str, serves: bool, stop: threading.Event) -> None:
    if serves:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client:
            while not stop.is_set():
                client.post(
                    "/conversa/messages",
                    json={"channel": "sms", "to": "+15551234567", "body": "x"},
                )
                client.get("/conversa/messages")
        return
    with bootstrap(bench_settings(url)) as service:
        while not stop.is_set():
            service.send("sms", "+15551234567", {"body": "x"})


def measure(url: str, token: str, layout: Layout) -> tuple[int, int, int]:
    database = url.rsplit("/", 1)[1]
    holder = conversa(url, ("worker",), {}) if layout.standby else None
    if holder is not None:
        time.sleep(5)
    port = free_port()
    process = conversa(
        url, layout.args + (("--port", str(port)) if layout.serves else ()), layout.env
    )
    try:
        time.sleep(6)
        idle = peak(database, process.pid, 3)
        stop = threading.Event()
        work = functools.partial(load, url, port, token, layout.serves, stop)
        threads = [threading.Thread(target=work) for _ in range(64 if layout.serves else 4)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        loaded = peak(database, process.pid, 8)
        stop.set()
        for thread in threads:
            thread.join()
        time.sleep(3)
        after = peak(database, process.pid, 2)
    finally:
        for running in (process, holder):
            if running is not None:
                running.send_signal(signal.SIGTERM)
                running.wait(60)
    return idle, loaded, after


def main() -> None:
    with quiet_logging(), scratch_database() as url:
        migrate(bench_settings(url))
        with bootstrap(bench_settings(url)) as service:
            _info, token = service.tokens.create("connections")
        for layout in LAYOUTS:
            idle, loaded, after = measure(url, token, layout)
            print(
                f"{layout.label:32s} idle {idle:3d}   under load (peak) {loaded:3d}   "
                f"after the load {after:3d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
