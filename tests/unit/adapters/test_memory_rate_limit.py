"""The in-memory rate limit: a moving window per token, counted on the event loop."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from limits import parse

from conversa.adapters.http.errors import ApiError
from conversa.adapters.http.ratelimit import MemoryWindows, RateLimiter, is_memory
from conversa.app.tokens import TokenInfo


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_moving_window_refuses_the_hit_past_the_limit_until_the_oldest_leaves() -> None:
    clock = Clock()
    windows = MemoryWindows(parse("3/minute"), clock=clock)
    assert [windows.hit("a") for _ in range(3)] == [None, None, None]
    clock.now += 10
    assert windows.hit("a") == 1_000_000.0 + 60  # room again when the first hit leaves
    assert windows.hit("b") is None  # another token counts apart
    clock.now += 49.5  # 59.5 s after the first three hits: still in the window
    assert windows.hit("a") == 1_000_060.0
    clock.now += 0.6  # now they have left it; the refused hits were never counted
    assert [windows.hit("a") for _ in range(4)] == [None, None, None, 1_000_120.1]


def test_idle_keys_are_dropped() -> None:
    clock = Clock()
    windows = MemoryWindows(parse("2/second"), clock=clock)
    for key in ("a", "b", "c"):
        windows.hit(key)
    clock.now += 5
    windows.hit("d")
    assert set(windows._hits) == {"d"}


def test_the_limiter_answers_429_with_retry_after_from_memory() -> None:
    limiter = RateLimiter("2/minute", "memory://", timeout=0.001)
    assert limiter.memory is not None and limiter.limiter is None
    token = TokenInfo(id=uuid.uuid4(), name="t", created_at=datetime.now(UTC), revoked_at=None)

    async def three_hits() -> ApiError:
        await limiter.hit(token)
        await limiter.hit(token)
        with pytest.raises(ApiError) as refused:
            await limiter.hit(token)
        await limiter.aclose()
        return refused.value

    error = asyncio.run(three_hits())
    assert (error.status, error.code) == (429, "rate_limited")
    assert 59 <= int(error.headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("uri", "memory"),
    [("memory://", True), ("async+memory://", True), ("redis://127.0.0.1:6379/0", False)],
)
def test_which_storages_are_in_memory(uri: str, memory: bool) -> None:
    assert is_memory(uri) is memory
