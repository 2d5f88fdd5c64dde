"""Pacing the attempts of one driver: ``CONVERSA_<DRIVER>_MAX_PER_SECOND``.

Providers throttle: Twilio takes about one message a second per long code (up to 100+ for
a short code), Meta 80 a second per number; past that they answer 429, and a burst of a
hundred thousand messages becomes a wall of retries. A :class:`Pacer` is a token bucket
that turns such a burst into a steady stream: it refills at ``rate`` tokens a second and
holds at most ``burst`` (a tenth of a second's worth, at least one), so the dispatcher never
sends more than ``rate`` a second over any window, nor more than ``burst`` at once.

The limit is per process. One process at a time drains the queue of asynchronous and
batch sends (the dispatcher's lock), so for those the limit holds for the whole
deployment; retries made by several workers' due scans are paced by each worker alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens now; return how many were granted."""
        with self._lock:
            granted = min(wanted, int(self._refill()))
            self._tokens -= granted
            return max(granted, 0)

    def delay(self) -> float:
        """Seconds until the next whole token."""
        with self._lock:
            missing = 1.0 - self._refill()
            return max(missing / self.rate, 0.0)


def pacers_of(limits: dict[str, float | None]) -> dict[str, Pacer]:
    """A pacer for each driver name that has a limit."""
    return {name: Pacer(rate) for name, rate in limits.items() if rate is not None}
