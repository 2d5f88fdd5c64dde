"""The bearer-token cache: valid tokens are never evicted by invalid secrets, invalid
lookups are cached apart and bounded, and a secret that cannot be a token is refused
without a lookup. Lookups are counted around the real TokenService on a real store."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from starlette.requests import Request

from conversa.adapters.http.auth import MAX_CACHED_TOKENS, MAX_CACHED_UNKNOWN, Authenticator
from conversa.adapters.http.errors import ApiError
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from conversa.app.tokens import TokenInfo, TokenService
from tests.support import make_settings


class CountingTokens:
    """The real TokenService, counting the lookups made per secret."""

    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens
        self.lookups: Counter[str] = Counter()

    def authenticate(self, secret: str) -> TokenInfo | None:
        self.lookups[secret] += 1
        return self.tokens.authenticate(secret)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[ConversaService]:
    # The cache sits in front of the store and does not depend on which store it is.
    settings = make_settings(f"sqlite:///{tmp_path / 'conversa.sqlite3'}")
    migrate(settings)
    with bootstrap(settings) as service:
        yield service


def request_with(secret: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "headers": [(b"authorization", f"Bearer {secret}".encode())],
        }
    )


async def outcome(authenticator: Authenticator, secret: str) -> TokenInfo | None:
    try:
        return await authenticator(request_with(secret))
    except ApiError as error:
        assert error.status == 401
        return None


def fake_secret() -> str:
    """Shaped exactly like a real secret, but no token's."""
    return "cnv_" + secrets.token_urlsafe(32)


def test_invalid_secrets_never_evict_a_valid_token(sqlite_service: ConversaService) -> None:
    _info, valid = sqlite_service.tokens.create("valid")
    tokens = CountingTokens(sqlite_service.tokens)
    clock = Clock()  # no entry expires during the test, however long it takes
    authenticator = Authenticator(tokens, clock=clock)

    async def scenario() -> None:
        assert await outcome(authenticator, valid) is not None
        assert tokens.lookups[valid] == 1
        invalid = [fake_secret() for _ in range(2 * MAX_CACHED_TOKENS)]
        for secret in invalid:
            assert await outcome(authenticator, secret) is None
        # Still a cache hit: no second lookup of the valid token.
        assert await outcome(authenticator, valid) is not None
        assert tokens.lookups[valid] == 1
        assert authenticator.cache_sizes() == (1, MAX_CACHED_UNKNOWN)
        # The latest invalid secret is still cached as unknown; the oldest was dropped.
        assert await outcome(authenticator, invalid[-1]) is None
        assert tokens.lookups[invalid[-1]] == 1
        assert await outcome(authenticator, invalid[0]) is None
        assert tokens.lookups[invalid[0]] == 2

    anyio.run(scenario)


def test_what_cannot_be_a_secret_is_refused_without_a_lookup(
    sqlite_service: ConversaService,
) -> None:
    tokens = CountingTokens(sqlite_service.tokens)
    authenticator = Authenticator(tokens)
    malformed = [
        "garbage",
        "cnv_short",
        "cnv_" + "x" * 500,
        "CNV_" + "x" * 43,
        "cnv_" + "x" * 42 + "!",
        "cnv_" + "é" * 43,
    ]

    async def scenario() -> None:
        for secret in malformed:
            assert await outcome(authenticator, secret) is None

    anyio.run(scenario)
    assert tokens.lookups == Counter()
    assert authenticator.cache_sizes() == (0, 0)


def test_entries_expire_and_a_revoked_token_stops_working(
    sqlite_service: ConversaService,
) -> None:
    _info, valid = sqlite_service.tokens.create("soon-revoked")
    tokens = CountingTokens(sqlite_service.tokens)
    clock = Clock()
    authenticator = Authenticator(tokens, clock=clock, ttl=5.0)
    unknown = fake_secret()

    async def scenario() -> None:
        assert await outcome(authenticator, valid) is not None
        assert await outcome(authenticator, unknown) is None
        sqlite_service.tokens.revoke("soon-revoked")
        clock.now += 4.9  # still trusted from the cache
        assert await outcome(authenticator, valid) is not None
        assert await outcome(authenticator, unknown) is None
        assert (tokens.lookups[valid], tokens.lookups[unknown]) == (1, 1)
        clock.now += 0.2  # past the five seconds: looked up again
        assert await outcome(authenticator, valid) is None
        assert await outcome(authenticator, unknown) is None
        assert (tokens.lookups[valid], tokens.lookups[unknown]) == (2, 2)

    anyio.run(scenario)
