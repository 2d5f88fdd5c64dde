"""The send measures are ready for respond-async and batch: against a server that
implements them they are measured, against one that does not they say "not available"."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import phase_http
from bench._db import bench_settings, scratch_database
from bench.config import Config
from bench.servers import RssSampler, Server
from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import migrate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


class FakeServer(ThreadingHTTPServer):
    """Answers sends 201, and respond-async and batches 202 when ``complete``."""

    daemon_threads = True

    def __init__(self, *, complete: bool) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.complete = complete


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        message = {"id": str(uuid.uuid4()), "status": "sent"}
        if self.path.endswith("/batch"):
            if not self.server.complete:
                self.answer(405, {})
                return
            items = json.loads(body)["messages"]
            data = [{"index": i, "status": 201, "message": message} for i in range(len(items))]
            self.answer(202, {"data": data})
        elif self.headers.get("Prefer") == "respond-async" and self.server.complete:
            self.answer(202, {**message, "status": "queued"})
        else:
            self.answer(201, message)

    def answer(self, status: int, document: object) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def conninfo() -> Iterator[str]:
    """An empty, migrated Conversa database: nothing to project, nothing queued."""
    with scratch_database() as url:
        migrate(bench_settings(url))
        yield PostgresBackend(url).conninfo()


def fake(complete: bool) -> Iterator[Server]:
    server = FakeServer(complete=complete)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stand_in = subprocess.Popen(["sleep", "120"], start_new_session=True)  # a process to watch
    try:
        yield Server("fake", server.server_address[1], stand_in)
    finally:
        server.shutdown()
        server.server_close()
        stand_in.kill()
        stand_in.wait()


def config() -> Config:
    return Config(
        quick=True,
        seconds=1,
        rounds=1,
        clients=(2,),
        webhook_clients=2,
        lag_clients=999,  # no lag probe: the fake's messages never reach a read model
        batch_items=5,
        workers=1,
        events=10,
        rows=10,
        list_seconds=1,
        log_level="INFO",
        phases=frozenset({"sends"}),
        output=Path("unused.json"),
        run_id="test",
    )


@pytest.mark.parametrize("complete", [True, False])
def test_every_send_mode_is_measured_or_said_unavailable(conninfo: str, complete: bool) -> None:
    for server in fake(complete):
        mine = phase_http.Target(server, "token", conninfo)
        theirs = phase_http.Target(server, "token")
        with RssSampler([server]) as rss:
            rows = {row.key: row for row in phase_http._sends(config(), mine, theirs, rss)}

    assert rows["sends.sync.c2"].conversa is not None
    assert rows["sends.sync.c2"].baseline is not None
    for key in ("sends.async.c2", "sends.batch.c2"):
        row = rows[key]
        assert row.baseline is not None
        if complete:
            assert row.conversa is not None and row.conversa.value > 0, row
            assert row.note == ""
        else:
            assert row.conversa is None
            assert row.note.startswith("not available: the server answers ")
    assert rows["sends.batch.c2"].note.endswith(
        "" if complete else "no POST /conversa/messages/batch"
    )
    if complete:
        batch = rows["sends.batch.c2"].conversa
        assert batch is not None
        assert batch.detail["items"] == [5 * n for n in batch.detail["requests"]]
        drain = rows["sends.async_drain.c2"].conversa
        assert drain is not None and drain.value > 0
    else:
        assert "sends.async_drain.c2" not in rows
