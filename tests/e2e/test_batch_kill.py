"""A server killed (SIGKILL) while batches are being posted to it: every batch answered
before the kill is in the store, whole; a batch left unanswered is in it whole or not at
all; nothing is stored twice, and posting the unanswered batches again finishes them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.domain.message import message_id_for
from tests.e2e.conftest import free_port
from tests.support import make_settings

pytestmark = pytest.mark.postgres

ITEMS = 200


def batch(number: int) -> list[dict[str, Any]]:
    return [
        {
            "channel": "sms",
            "to": f"+1202555{(number * ITEMS + n) % 10_000:04d}",
            "body": f"batch {number} item {n}",
            "idempotency_key": f"kill-{number}-{n}",
        }
        for n in range(ITEMS)
    ]


def test_a_killed_server_leaves_every_batch_whole(postgres_url: str, tmp_path: Path) -> None:
    migrate(make_settings(postgres_url))
    with bootstrap(make_settings(postgres_url)) as service:
        info, token = service.tokens.create("kill")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATABASE_URL": postgres_url, "CONVERSA_RATE_LIMIT": "100000/minute"})
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "conversa", "serve", "--port", str(port), "--no-worker"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/conversa/health", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.1)

    answered: dict[int, list[dict[str, Any]]] = {}
    unanswered: set[int] = set()
    lock = threading.Lock()
    counter = iter(range(1_000_000))

    def post_batches() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            while True:
                with lock:
                    number = next(counter)
                try:
                    answer = client.post(
                        "/conversa/messages/batch", json={"messages": batch(number)}
                    )
                except httpx.TransportError:
                    with lock:
                        unanswered.add(number)
                    return
                assert answer.status_code == 202, answer.text
                with lock:
                    answered[number] = answer.json()["data"]

    clients = [threading.Thread(target=post_batches) for _ in range(4)]
    for client in clients:
        client.start()
    while len(answered) < 6:  # well into the load
        assert server.poll() is None
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait()
    for client in clients:
        client.join(30)

    scope = str(info.id)
    with psycopg.connect(postgres_url.split("?")[0], autocommit=True) as conn:
        schema = postgres_url.split("schema=")[1]
        stored = {
            row[0]
            for row in conn.execute(
                f'SELECT originator_id FROM "{schema}".conversa_events WHERE originator_version = 1'
            )
        }

    def recorded(number: int) -> int:
        return sum(
            message_id_for(scope, item["idempotency_key"]) in stored for item in batch(number)
        )

    assert answered
    for number, results in answered.items():
        assert [r["status"] for r in results] == [201] * ITEMS
        assert recorded(number) == ITEMS
    for number in unanswered:
        assert recorded(number) in (0, ITEMS), f"batch {number} is half-recorded"
    # Keys make every id unique: nothing can be stored twice. Posting the unanswered
    # batches again (to a new server) records what is missing and replays the rest.
    with bootstrap(make_settings(postgres_url)) as service:
        for number in unanswered:
            before = recorded(number)
            again = service.send_batch(batch(number), scope=scope)
            replayed = sum(1 for r in again if r.result is not None and r.result.replayed)
            assert replayed == before
            assert all(r.accepted for r in again)
