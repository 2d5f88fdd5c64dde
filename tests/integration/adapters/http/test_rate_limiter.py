"""The rate limiter counts through the async API of ``limits``, bounded by a timeout; when
its storage fails it lets requests through (``open``, the default) or refuses them with 503
``rate_limit_unavailable`` (``closed``), and leaves the failing storage alone for a while.
Against the in-process application on SQLite, a Redis that never answers (a silent TCP
server), a port where nothing listens, and the real Redis."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from conversa.adapters.http.errors import ApiError
from conversa.adapters.http.ratelimit import FAILING_SECONDS, RateLimiter
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.tokens import TokenInfo
from tests.fakes.silent import silent_server
from tests.integration.adapters.http.conftest import Api, running_api
from tests.support import make_settings

TIMEOUT = 0.5


@contextmanager
def api_with(tmp_path: Path, **settings: str) -> Iterator[Api]:
    config = make_settings(f"sqlite:///{tmp_path / 'conversa.sqlite3'}", **settings)
    migrate(config)
    with bootstrap(config) as service, running_api(service) as api:
        yield api


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connections are refused


def a_token() -> TokenInfo:
    return TokenInfo(uuid.uuid4(), "t", datetime.now(UTC), None)


def test_closed_refuses_with_503_within_the_timeout_then_at_once(tmp_path: Path) -> None:
    with (
        silent_server() as port,
        api_with(
            tmp_path,
            rate_limit_storage=f"redis://127.0.0.1:{port}/0",
            rate_limit_timeout_seconds=str(TIMEOUT),
            rate_limit_on_error="closed",
        ) as api,
    ):
        started = time.monotonic()
        refused = api.get("/conversa/messages", headers=api.auth)
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_unavailable"
        assert refused.headers["retry-after"] == str(int(FAILING_SECONDS))
        assert TIMEOUT - 0.1 < waited < TIMEOUT + 2, waited

        # While the storage is known to fail, nobody waits on it again.
        started = time.monotonic()
        again = api.get("/conversa/messages", headers=api.auth)
        assert again.status_code == 503 and time.monotonic() - started < TIMEOUT
        # Endpoints without a token are not rate limited, so not refused.
        assert api.get("/conversa/health").status_code == 200
        # A wrong token is still a 401: authentication comes first.
        assert api.get("/conversa/messages").status_code == 401


def test_open_lets_requests_through_uncounted(tmp_path: Path) -> None:
    with api_with(
        tmp_path,
        rate_limit="1/minute",
        rate_limit_storage=f"redis://127.0.0.1:{closed_port()}/0",
        rate_limit_timeout_seconds=str(TIMEOUT),
    ) as api:
        codes = [api.get("/conversa/messages", headers=api.auth).status_code for _ in range(3)]
        assert codes == [200, 200, 200]  # past "1/minute": nothing could count them


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_the_storage_is_asked_again_once_the_failing_window_has_passed(
    on_error: str,
) -> None:
    now = [1000.0]
    with silent_server() as port:
        limiter = RateLimiter(
            "100/minute",
            f"redis://127.0.0.1:{port}/0",
            timeout=0.2,
            on_error="open" if on_error == "open" else "closed",
            clock=lambda: now[0],
        )

        async def hit() -> tuple[str, float]:
            started = time.monotonic()
            try:
                await limiter.hit(a_token())
                outcome = "through"
            except ApiError as error:
                outcome = error.code
            return outcome, time.monotonic() - started

        expected = "through" if on_error == "open" else "rate_limit_unavailable"

        async def scenario() -> None:
            outcome, waited = await hit()
            assert outcome == expected and waited >= 0.15  # it waited on the storage
            now[0] += FAILING_SECONDS - 0.1
            outcome, waited = await hit()
            assert outcome == expected and waited < 0.1  # it did not
            now[0] += 0.2
            outcome, waited = await hit()
            assert outcome == expected and waited >= 0.15  # asked again
            await limiter.aclose()

        anyio.run(scenario)


def test_the_limit_is_counted_in_redis_through_the_async_client() -> None:
    limiter = RateLimiter("2/minute", "redis://127.0.0.1:6379/0", timeout=2)
    token = a_token()

    async def hits() -> list[str]:
        outcomes = []
        for _ in range(3):
            try:
                await limiter.hit(token)
                outcomes.append("through")
            except ApiError as error:
                outcomes.append(f"{error.status} {error.headers.get('Retry-After', '')}")
        await limiter.aclose()
        return outcomes

    first, second, third = anyio.run(hits)
    assert (first, second) == ("through", "through")
    status, retry_after = third.split()
    assert status == "429" and 1 <= int(retry_after) <= 60
