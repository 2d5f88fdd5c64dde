"""When to try again after a transient provider error: exponential backoff, full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt. Retry ``n`` waits a random time
    between 0 and ``min(max_seconds, base_seconds * 2**(n-1))`` ("full jitter"), so that
    messages that failed together do not come back together."""

    max_retries: int
    base_seconds: float
    max_seconds: float
    jitter: Callable[[float], float] = field(default=lambda cap: random.uniform(0, cap))

    def allows_retry_after(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1 = the first) may be followed by another."""
        return attempt <= self.max_retries

    def ceiling(self, attempt: int) -> float:
        """The longest wait after attempt number ``attempt``."""
        return min(self.max_seconds, self.base_seconds * 2.0 ** (attempt - 1))

    def delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.jitter(self.ceiling(attempt)))

    def window(self, lease_seconds: float) -> timedelta:
        """How long a message may wait for its last attempt, at the very most."""
        waits = sum(self.ceiling(n) for n in range(1, self.max_retries + 1))
        return timedelta(seconds=waits + lease_seconds * (self.max_retries + 1))
