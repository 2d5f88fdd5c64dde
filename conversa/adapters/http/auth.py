"""Bearer-token authentication and per-token rate limits for the application endpoints."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from conversa.adapters.http.errors import ApiError
from conversa.app.tokens import TokenInfo

#: How long a token's lookup is trusted; a revoked token stops working within this time.
TOKEN_CACHE_SECONDS = 5.0
MAX_CACHED_TOKENS = 10_000


class TokenLookup(Protocol):
    def authenticate(self, secret: str) -> TokenInfo | None: ...


class Authenticator:
    """Looks each bearer secret up once, then trusts the answer for a few seconds."""

    def __init__(
        self,
        tokens: TokenLookup,
        *,
        ttl: float = TOKEN_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, TokenInfo | None]] = {}
        self._lock = threading.Lock()

    async def __call__(self, request: Request) -> TokenInfo:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise unauthorized("send an API token as Authorization: Bearer <token>")
        # Cache by digest so that no secret is held in memory longer than the request.
        key = hashlib.sha256(secret.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            token = cached[1]
        else:
            token = await run_in_threadpool(self.tokens.authenticate, secret)
            with self._lock:
                if len(self._cache) >= MAX_CACHED_TOKENS:
                    self._cache.clear()
                self._cache[key] = (now + self.ttl, token)
        if token is None or not token.active:
            raise unauthorized("the API token is unknown or revoked")
        return token


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """A moving window per token (the ``limits`` package). ``memory://`` counts per
    process; a shared storage such as ``redis://host:6379`` counts across processes."""

    def __init__(self, rate: str, storage_uri: str = "memory://") -> None:
        self.item = parse(rate)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, token: TokenInfo) -> None:
        key = str(token.id)
        if self.limiter.hit(self.item, key):
            return
        reset_at, _remaining = self.limiter.get_window_stats(self.item, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {self.item} per token exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
