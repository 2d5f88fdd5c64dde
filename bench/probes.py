"""Small measuring helpers that talk to a running Conversa: what its endpoints support,
the projection's progress, and the live read-model lag."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

PROJECTION_TIMEOUT_SECONDS = 600
#: The topic of a message's first event: one is stored for every message recorded.
QUEUED_TOPIC = "conversa.domain.message:Message.Queued"
LAG_TIMEOUT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Availability:
    available: bool
    reason: str = ""


def send_body(key: str) -> dict[str, Any]:
    return {"channel": "sms", "to": "+12025550100", "body": f"benchmark probe {key}"}


def probe_async(base_url: str, token: str) -> Availability:
    """Whether ``Prefer: respond-async`` is honoured (202), or ignored (201)."""
    key = f"probe-async-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{base_url}/conversa/messages",
        json=send_body(key),
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "Prefer": "respond-async",
        },
        timeout=30,
    )
    if answer.status_code == 202:
        return Availability(True)
    if answer.status_code == 201:
        return Availability(False, "the server answers 201: it ignores Prefer: respond-async")
    return Availability(False, f"the server answers {answer.status_code} to respond-async")


def probe_batch(base_url: str, token: str) -> Availability:
    """Whether ``POST /conversa/messages/batch`` exists and takes one item (202)."""
    key = f"probe-batch-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{base_url}/conversa/messages/batch",
        json={"messages": [{**send_body(key), "idempotency_key": key}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if answer.status_code == 202:
        return Availability(True)
    if answer.status_code in (404, 405):
        return Availability(
            False, f"the server answers {answer.status_code}: no POST /conversa/messages/batch"
        )
    return Availability(False, f"the server answers {answer.status_code} to a one-item batch")


def projection_lag(conn: psycopg.Connection[Any]) -> int:
    """Notification ids between the read model's position and the event store's head."""
    head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM conversa_events").fetchone()
    position = conn.execute(
        "SELECT coalesce(max(notification_id), 0) FROM conversa_messages_tracking"
    ).fetchone()
    assert head is not None and position is not None
    return max(int(head[0]) - int(position[0]), 0)


def wait_projected(conninfo: str, timeout: float = PROJECTION_TIMEOUT_SECONDS) -> float:
    """Wait until the worker's projection has caught up; return the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while projection_lag(conn) > 0:
            if time.monotonic() - started > timeout:
                msg = f"the projection did not catch up within {timeout:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.2)
    return time.monotonic() - started


def wait_quiet(
    conninfo: str, *, quiet: float = 1.0, timeout: float = PROJECTION_TIMEOUT_SECONDS
) -> None:
    """Wait until no new message has been recorded for ``quiet`` seconds: until the server
    has finished the requests the load generator gave up on at the end of a round."""
    started = time.monotonic()
    query = (
        "SELECT notification_id FROM conversa_events WHERE topic = %s "
        "ORDER BY notification_id DESC LIMIT 1"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        last = None
        since = time.monotonic()
        while True:
            row = conn.execute(query, (QUEUED_TOPIC,)).fetchone()
            head = row[0] if row is not None else 0
            now = time.monotonic()
            if head != last:
                last, since = head, now
            elif now - since >= quiet:
                return
            if now - started > timeout:
                msg = f"the server was still recording messages after {timeout:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.1)


def wait_drained(conninfo: str, timeout: float = PROJECTION_TIMEOUT_SECONDS) -> float:
    """Wait until no message is left queued (and the read model says so); return when
    (``time.monotonic()``) that was seen."""
    started = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            queued = conn.execute(
                "SELECT count(*) FROM conversa_messages WHERE status = 'queued'"
            ).fetchone()
            if queued is not None and queued[0] == 0 and projection_lag(conn) == 0:
                return time.monotonic()
            if time.monotonic() - started > timeout:
                msg = f"queued messages were not all sent within {timeout:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.05)


@dataclass
class LagProbe:
    """While running, sends one message at a time and measures how long after its answer
    its row shows the answered status in ``conversa_messages`` (polled every 2 ms)."""

    base_url: str
    token: str
    conninfo: str
    interval: float = 0.05
    lags_ms: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LagProbe:
        self._thread = threading.Thread(target=self._run, name="lag-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(LAG_TIMEOUT_SECONDS + 5)

    def _run(self) -> None:
        run = uuid.uuid4().hex[:8]
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as client,
            psycopg.connect(self.conninfo, autocommit=True) as conn,
        ):
            n = 0
            while not self._stop.is_set():
                n += 1
                key = f"lag-{run}-{n}"
                try:
                    answer = client.post(
                        "/conversa/messages", json=send_body(key), headers={"Idempotency-Key": key}
                    )
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                answered = time.perf_counter()
                if answer.status_code not in (201, 202):
                    self.failures += 1
                    continue
                document = answer.json()
                lag = self._wait_row(conn, document["id"], document["status"], answered)
                if lag is None:
                    self.failures += 1
                else:
                    self.lags_ms.append(lag)
                self._stop.wait(self.interval)

    @staticmethod
    def _wait_row(
        conn: psycopg.Connection[Any], message_id: str, status: str, answered: float
    ) -> float | None:
        while True:
            row = conn.execute(
                "SELECT status FROM conversa_messages WHERE id = %s", (message_id,)
            ).fetchone()
            now = time.perf_counter()
            if row is not None and row[0] == status:
                return (now - answered) * 1000
            if now - answered > LAG_TIMEOUT_SECONDS:
                return None
            time.sleep(0.002)
