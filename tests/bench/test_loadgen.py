"""The wrk scripts make every request distinct and count what was accepted."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import loadgen

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.server.lock:
            self.server.requests.append((self.path, headers, body))
        if self.path.endswith("/batch"):
            items = json.loads(body)["messages"]
            answer = {"data": [{"index": i, "status": 201} for i in range(len(items))]}
            self.answer(202, json.dumps(answer).encode())
        elif headers.get("prefer") == "respond-async":
            self.answer(202, b"{}")
        elif self.path.startswith("/hook"):
            self.answer(200, b"{}")
        else:
            self.answer(201, b"{}")

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()


def test_every_send_has_its_own_key_and_body(server: Recorder) -> None:
    result = loadgen.run(
        "send", server.url, connections=4, seconds=1, args=["/send", "tok", "run1", "sync"]
    )

    keys = [headers["idempotency-key"] for _path, headers, _body in server.requests]
    bodies = [body for _path, _headers, body in server.requests]
    assert len(keys) >= result.requests > 10
    assert len(set(keys)) == len(keys)
    assert len(set(bodies)) == len(bodies)
    assert {headers["authorization"] for _p, headers, _b in server.requests} == {"Bearer tok"}
    assert all("prefer" not in headers for _p, headers, _b in server.requests)
    assert result.items == result.statuses[201] == result.requests
    assert result.failures == 0
    assert 0 < result.p50_ms <= result.p99_ms


def test_respond_async_sends_say_so_and_count_202s(server: Recorder) -> None:
    result = loadgen.run(
        "send", server.url, connections=2, seconds=1, args=["/send", "tok", "run2", "async"]
    )

    assert {headers["prefer"] for _p, headers, _b in server.requests} == {"respond-async"}
    assert result.items == result.statuses[202] == result.requests > 0


def test_a_sync_send_answered_202_is_not_counted_as_accepted(server: Recorder) -> None:
    result = loadgen.run(
        "send", server.url, connections=1, seconds=1, args=["/hook", "tok", "run3", "sync"]
    )

    assert result.items == 0
    assert result.failures == 0  # 200 is an answer, just not an accepted send


def test_a_batch_counts_its_accepted_items_and_keys_them_all(server: Recorder) -> None:
    result = loadgen.run(
        "batch", server.url, connections=2, seconds=1, args=["/m/batch", "tok", "run4", "50"]
    )

    items = [item for _p, _h, body in server.requests for item in json.loads(body)["messages"]]
    keys = [item["idempotency_key"] for item in items]
    assert len(keys) == len(set(keys)) == 50 * len(server.requests)
    assert result.items == 50 * result.requests > 0


def test_replayed_requests_are_used_once_across_runs(server: Recorder, tmp_path: Path) -> None:
    replay = loadgen.ReplayFile(
        tmp_path / "requests.tsv", (f"/hook?n={n}\tsig{n}\tbody={n}\n" for n in range(20_000))
    )

    first = replay.run(server.url, connections=2, seconds=1)
    second = replay.run(server.url, connections=2, seconds=1)

    paths = [path for path, _h, _b in server.requests]
    assert len(paths) == len(set(paths)) >= first.requests + second.requests > 0
    assert {h["x-twilio-signature"] for p, h, _b in server.requests} == {
        "sig" + p.split("=")[1] for p in paths
    }
    assert {body for _p, _h, body in server.requests} == {
        b"body=" + p.split("=")[1].encode() for p in paths
    }
    assert first.items == first.requests and second.items == second.requests
    assert not replay.reused


def test_a_replay_past_the_last_request_starts_again_and_says_so(
    server: Recorder, tmp_path: Path
) -> None:
    replay = loadgen.ReplayFile(
        tmp_path / "requests.tsv", (f"/hook?n={n}\tsig\tbody\n" for n in range(10))
    )

    result = replay.run(server.url, connections=2, seconds=1)

    assert result.requests > 10
    assert {path for path, _h, _b in server.requests} == {f"/hook?n={n}" for n in range(10)}
    assert replay.reused
