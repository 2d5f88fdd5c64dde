"""Per-token rate limits on the application endpoints, counted without blocking the server.

A moving window per token. ``memory://`` counts per process, in :class:`MemoryWindows`:
plain data on the event loop, counted in a few microseconds, with nothing to wait for,
so nothing to time out and nothing that can fail. A shared storage such as
``redis://host:6379`` counts across processes, through the async API of the ``limits``
package (redis-py's asyncio client, the ``redis`` extra). Every call to a shared storage is
bounded by ``CONVERSA_RATE_LIMIT_TIMEOUT_SECONDS``, so a storage that hangs delays only the
requests that count against it, never health, webhooks or anything else on the loop.

When the storage fails or does not answer in time, ``CONVERSA_RATE_LIMIT_ON_ERROR`` says
what happens, for :data:`FAILING_SECONDS` (the storage is not asked again meanwhile, so
requests do not each wait out the timeout):

- ``open`` (the default): the request goes through uncounted. The rate limit protects the
  service from a runaway client; it is not what makes a send correct. A production
  messaging service should keep delivering one-time codes and alerts when a cache in front
  of it fails, rather than turn a Redis outage into an outage of sending; the database,
  the thread pools and the providers' own limits still bound the load.
- ``closed``: the request is refused with 503 ``rate_limit_unavailable`` and
  ``Retry-After``, for deployments where an uncounted request costs more than a refused one.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import anyio
from limits import RateLimitItem, parse
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from conversa.adapters.http.errors import ApiError
from conversa.app.settings import Settings
from conversa.app.tokens import TokenInfo

log = logging.getLogger(__name__)

#: After a failure, how long the storage is left alone before it is asked again.
FAILING_SECONDS = 5.0
OnError = Literal["open", "closed"]


class RateLimiter:
    def __init__(
        self,
        rate: str,
        storage_uri: str = "memory://",
        *,
        timeout: float = 0.5,
        on_error: OnError = "open",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.item = parse(rate)
        self.timeout = timeout
        self.on_error = on_error
        self.clock = clock
        # In memory: counted on the loop, without the ``limits`` storage's locks, expiry
        # task and thread hops, which a busy thread pool turned into "failures".
        self.memory: MemoryWindows | None = None
        self.limiter: MovingWindowRateLimiter | None = None
        if is_memory(storage_uri):
            self.memory = MemoryWindows(self.item)
        else:
            self.limiter = MovingWindowRateLimiter(async_storage(storage_uri, timeout))
        self._failing_until: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            settings.rate_limit,
            settings.rate_limit_storage,
            timeout=settings.rate_limit_timeout_seconds,
            on_error=settings.rate_limit_on_error,
        )

    async def hit(self, token: TokenInfo) -> None:
        """Count one request of ``token``: raise 429 past the limit, and when the storage
        fails, let the request through (``open``) or raise 503 (``closed``)."""
        if self.memory is not None:
            reset_at = self.memory.hit(str(token.id))
            if reset_at is not None:
                self._limited(reset_at)
            return
        assert self.limiter is not None
        if self._failing_until is not None:
            if self.clock() < self._failing_until:
                self._unavailable()
                return
            self._failing_until = None
        key = str(token.id)
        try:
            with anyio.fail_after(self.timeout):
                if await self.limiter.hit(self.item, key):
                    return
                reset_at, _remaining = await self.limiter.get_window_stats(self.item, key)
        except TimeoutError:
            self._failed(f"no answer within {self.timeout:g} s")
            self._unavailable()
            return
        except (StorageError, OSError) as error:
            cause = error.storage_error if isinstance(error, StorageError) else error
            self._failed(type(cause).__name__)
            self._unavailable()
            return
        self._limited(reset_at)

    def _limited(self, reset_at: float) -> None:
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {self.item} per token exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    async def aclose(self) -> None:
        """Close the storage's connections (a Redis client's pool), at shutdown."""
        if self.limiter is None:
            return  # in memory: nothing to close
        # ``limits`` has no public close: its Redis storages keep their redis-py clients
        # on a bridge, as ``storage`` (and ``storage_replica`` behind Sentinel).
        bridge = getattr(self.limiter.storage, "bridge", None)
        for name in ("storage", "storage_replica"):
            client = getattr(bridge, name, None)
            close = getattr(client, "aclose", None)
            if close is None:
                continue
            try:
                with anyio.move_on_after(self.timeout):
                    await close()
            except Exception:  # shutting down: a storage already gone changes nothing
                log.debug("closing the rate limit storage failed", exc_info=True)

    def _failed(self, reason: str) -> None:
        self._failing_until = self.clock() + FAILING_SECONDS
        # Never the storage URI: it can hold a password.
        log.warning(
            "rate limit storage failed (%s): %s for the next %g s",
            reason,
            "letting requests through uncounted"
            if self.on_error == "open"
            else "refusing requests with 503",
            FAILING_SECONDS,
        )

    def _unavailable(self) -> None:
        if self.on_error == "closed":
            raise ApiError(
                503,
                "rate_limit_unavailable",
                "the rate limiter's storage is not answering, and this server refuses "
                "requests it cannot count; retry shortly",
                headers={"Retry-After": str(math.ceil(FAILING_SECONDS))},
            )


def is_memory(uri: str) -> bool:
    """Whether ``uri`` names the per-process memory storage (``memory://``)."""
    return uri.removeprefix("async+").split("://", 1)[0] == "memory"


class MemoryWindows:
    """A moving window per key, in this process, as the ``limits`` memory storage counts it:
    a hit is refused when ``amount`` hits were accepted in the last ``expiry`` seconds;
    refused hits are not counted.

    Only ever used from one thread (the event loop), with no ``await`` inside a hit, so it
    needs no lock. Each key keeps the times of its accepted hits still in the window (at
    most ``amount``), oldest first; keys idle past the window are dropped now and then."""

    def __init__(self, item: RateLimitItem, *, clock: Callable[[], float] = time.time) -> None:
        self.amount = item.amount
        self.expiry = float(item.get_expiry())
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def hit(self, key: str) -> float | None:
        """Count one hit of ``key``: None if accepted, else when (in ``clock`` time) the
        window has room again."""
        now = self.clock()
        cutoff = now - self.expiry
        if now >= self._next_sweep:
            self._sweep(cutoff)
            self._next_sweep = now + self.expiry
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        while hits and hits[0] < cutoff:
            hits.popleft()
        if len(hits) >= self.amount:
            return (hits[0] if hits else now) + self.expiry
        hits.append(now)
        return None

    def _sweep(self, cutoff: float) -> None:
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] < cutoff]:
            del self._hits[key]


def async_storage(uri: str, timeout: float) -> AsyncStorage:
    """The async ``limits`` storage for a storage URI (``memory://``, ``redis://...``), its
    errors wrapped in ``StorageError``; Redis through redis-py's asyncio client, whose
    socket timeouts are bounded too, so that no connection lingers on a silent server."""
    async_uri = uri if uri.startswith("async+") else "async+" + uri
    options: dict[str, float | str | bool] = {}
    if async_uri.startswith("async+redis"):
        options = {
            "implementation": "redispy",
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
    storage = storage_from_string(async_uri, wrap_exceptions=True, **options)
    if not isinstance(storage, AsyncStorage):  # every async+ scheme gives one
        raise TypeError(f"no async rate-limit storage for {async_uri.split(':', 1)[0]}")
    return storage
