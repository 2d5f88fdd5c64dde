"""During an outage the pool tries to reconnect at least every second: psycopg_pool's own
backoff doubles (1, 2, 4 ... 64 s), so a long outage would keep the pool away for up to a
minute after the database is back."""

from __future__ import annotations

from psycopg_pool.base import AttemptWithBackoff

from conversa.adapters.postgres_store import _PromptBackoff


def delays(attempt: AttemptWithBackoff, tries: int) -> list[float]:
    now, waits = 0.0, []
    for _ in range(tries):
        attempt.update_delay(now)
        waits.append(attempt.delay)
        now += attempt.delay
    return waits


def test_reconnection_attempts_stay_at_most_a_second_apart() -> None:
    waits = delays(_PromptBackoff(timeout=300), 12)

    assert max(waits) <= 1.0
    assert sum(waits) > 10  # still trying after ten seconds, not given up


def test_the_library_backoff_alone_would_wait_much_longer() -> None:
    assert max(delays(AttemptWithBackoff(timeout=300), 7)) > 30
