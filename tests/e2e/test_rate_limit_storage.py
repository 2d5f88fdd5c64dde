"""A rate-limit storage that stops answering (a Redis that hangs) must not freeze the
server: health and the webhooks answer at once while a rate-limited request waits, and that
request gets the documented answer (by default it is let through) within the timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.conftest import running_server
from tests.fakes.silent import silent_server

RATE_LIMIT_TIMEOUT = 3.0


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_redis_that_never_answers_freezes_no_endpoint(postgres_url: str, tmp_path: Path) -> None:
    with (
        silent_server() as port,
        running_server(
            postgres_url,
            tmp_path,
            "--no-worker",
            rate_limit_storage=f"redis://127.0.0.1:{port}/0",
            rate_limit_timeout_seconds=str(RATE_LIMIT_TIMEOUT),
        ) as server,
        server.client() as client,
        httpx.Client(base_url=server.base_url, timeout=2) as anonymous,
        ThreadPoolExecutor(1) as pool,
    ):
        limited = pool.submit(timed, lambda: client.get("/conversa/messages"))
        time.sleep(0.5)  # the request is now waiting on the silent Redis
        prompt = {
            "health": anonymous.get("/conversa/health"),
            "twilio webhook": anonymous.post("/conversa/webhooks/twilio", content=b"a=1"),
            "meta webhook": anonymous.post("/conversa/webhooks/whatsapp_cloud", content=b"{}"),
            "meta handshake": anonymous.get("/conversa/webhooks/whatsapp_cloud"),
            "openapi": anonymous.get("/conversa/openapi.json"),
        }
        assert not limited.done(), "the rate-limited request should still be waiting"
        for name, response in prompt.items():
            # An answer at all (each within the 2 s client timeout) shows the loop is free.
            assert response.status_code in (200, 403), (name, response.text)
            assert response.elapsed.total_seconds() < 1, (name, response.elapsed)

        response, elapsed = limited.result(timeout=RATE_LIMIT_TIMEOUT + 10)
        # The default: fail open, the request goes through once the timeout has passed.
        assert response.status_code == 200, response.text
        assert RATE_LIMIT_TIMEOUT - 0.5 < elapsed < RATE_LIMIT_TIMEOUT + 3, elapsed

        # While the storage is known to be failing, requests do not wait on it again.
        again, elapsed = timed(lambda: client.get("/conversa/messages"))
        assert again.status_code == 200 and elapsed < 1, elapsed
    assert "rate limit storage" in server.output()
