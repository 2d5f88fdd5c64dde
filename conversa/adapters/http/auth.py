"""Bearer-token authentication for the application endpoints."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from conversa.adapters.http.errors import ApiError
from conversa.app.tokens import TokenInfo, is_well_formed_secret

#: How long a token's lookup is trusted; a revoked token stops working within this time.
TOKEN_CACHE_SECONDS = 5.0
#: Valid tokens cached. Only real tokens take these places, so an attacker trying secrets
#: cannot push a valid token out; past this many tokens in use, the least recently used
#: one is looked up again.
MAX_CACHED_TOKENS = 10_000
#: Secrets shaped like a token that are not one (unknown, or revoked), cached apart so that
#: a client repeating a wrong secret does not reach the database every time; the least
#: recently used is dropped first.
MAX_CACHED_UNKNOWN = 10_000


class TokenLookup(Protocol):
    def authenticate(self, secret: str) -> TokenInfo | None: ...


class Authenticator:
    """Looks each bearer secret up once, then trusts the answer for a few seconds.

    A secret that cannot be a token (see :func:`~conversa.app.tokens.is_well_formed_secret`)
    is refused without a lookup and without a place in the cache. The others are cached by
    their digest (no secret is held in memory longer than its request) in two bounded LRU
    caches: valid tokens in one, everything else in the other, so that any number of
    distinct wrong secrets can evict only each other.
    """

    def __init__(
        self,
        tokens: TokenLookup,
        *,
        ttl: float = TOKEN_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self._valid: TTLCache[str, TokenInfo] = TTLCache(MAX_CACHED_TOKENS, ttl, timer=clock)
        self._unknown: TTLCache[str, bool] = TTLCache(MAX_CACHED_UNKNOWN, ttl, timer=clock)
        self._lock = threading.Lock()

    async def __call__(self, request: Request) -> TokenInfo:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise unauthorized("send an API token as Authorization: Bearer <token>")
        if not is_well_formed_secret(secret):
            raise unauthorized("the API token is unknown or revoked")
        key = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            token = self._valid.get(key)
            known_unknown = key in self._unknown
        if token is None and not known_unknown:
            token = await run_in_threadpool(self.tokens.authenticate, secret)
            with self._lock:
                if token is not None and token.active:
                    self._valid[key] = token
                else:
                    self._unknown[key] = True
        if token is None or not token.active:
            raise unauthorized("the API token is unknown or revoked")
        return token

    def cache_sizes(self) -> tuple[int, int]:
        """How many valid tokens, and how many unknown secrets, are cached now."""
        with self._lock:
            self._valid.expire()
            self._unknown.expire()
            return len(self._valid), len(self._unknown)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
