"""The built-in HTTP subscriber: signed requests a receiver can verify on its own, and
every event delivered, in order, to a receiver that was down for a while."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.worker import Worker
from tests.support import make_settings

SECRET = "events-secret-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """The application's endpoint: it checks each request as its docs would tell it to."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()

    def handle(self, headers: Any, body: bytes) -> int:
        timestamp = headers["Conversa-Timestamp"]
        scheme = dict(part.split("=", 1) for part in headers["Conversa-Signature"].split(","))
        expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        with self.lock:
            if scheme["t"] != timestamp or not hmac.compare_digest(
                scheme["v1"], expected.hexdigest()
            ):
                self.refused.append("bad signature")
                return 401
            if abs(time.time() - int(timestamp)) > 300:
                self.refused.append("too old")
                return 401
            event = json.loads(body)
            if str(event["event_id"]) != headers["Conversa-Event-Id"]:
                self.refused.append("id mismatch")
                return 400
            self.events.append(event)
        return 204


@contextmanager
def serving(receiver: Receiver, port: int) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(receiver.handle(self.headers, body))
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_a_receiver_that_was_down_gets_every_event_signed_and_in_order(
    backend_url: str,
) -> None:
    port = free_port()
    settings = make_settings(
        backend_url,
        events_url=f"http://127.0.0.1:{port}/hooks/conversa?token=abc",
        events_secret=SECRET,
        subscriber_retry_base_seconds="0.05",
        subscriber_retry_max_seconds="0.2",
    )
    migrate(settings)
    receiver = Receiver()
    with bootstrap(settings) as service:
        sent = [service.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(5)]
        stop = threading.Event()
        worker = Worker(service).start(stop)
        try:
            time.sleep(1.0)  # the receiver is down: nothing listens on its port yet
            assert receiver.events == []
            with serving(receiver, port):
                deadline = time.monotonic() + 15
                while len(receiver.events) < 5:
                    assert time.monotonic() < deadline, "the receiver never got every event"
                    time.sleep(0.05)
        finally:
            stop.set()
            worker.join(30)
        assert service.subscriber_store.dead_letters() == []
    assert receiver.refused == []
    assert [e["message_id"] for e in receiver.events] == [str(s.message_id) for s in sent]
    assert {e["type"] for e in receiver.events} == {"message.sent"}
    assert len({e["event_id"] for e in receiver.events}) == 5
