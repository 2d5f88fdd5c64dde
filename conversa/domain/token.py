"""API tokens: who may call the HTTP API, told as events in the same store as messages.

A token is known by a digest of its secret and never by the secret itself. Its id is
``uuid5(TOKEN_NAMESPACE, "secret:" + sha256(secret))``, so checking a presented secret is
one lookup by id, and nothing stored can be turned back into a secret.

Names are unique forever. A ``TokenName`` index aggregate, whose id is derived from the
name, is created in the same transaction as its token: the event store's unique
``(originator_id, version)`` makes a second token with the same name fail atomically,
with nothing written, and revoking a token leaves its name claimed (so an old name in a
log or a script can never silently start meaning a different token).

Making secrets is not the domain's business (it needs the OS's randomness): the
application generates them and hands them in.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from conversa.domain.errors import InvalidRequest

TOKEN_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/api-tokens")
MAX_TOKEN_NAME = 64
# fullmatch, so a trailing newline is refused too (``$`` would let one through).
_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_TOKEN_NAME}}}")


class InvalidTokenName(InvalidRequest):
    code = "invalid_token_name"

    def __init__(self, message: str) -> None:
        super().__init__("name", message)


class TokenNameTaken(InvalidRequest):
    """A token with this name exists or existed: names are never reused."""

    code = "token_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(
            "name",
            f"a token named {name!r} already exists or existed; names stay taken even "
            "after the token is revoked, so choose another name",
        )
        self.name = name


def parse_token_name(raw: object) -> str:
    """A valid token name: 1 to 64 characters of letters, digits, ``_``, ``.`` and ``-``."""
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise InvalidTokenName(
            f"a token name is 1 to {MAX_TOKEN_NAME} characters of letters A-Z a-z, "
            "digits, '_', '.' and '-'"
        )
    return raw


def secret_digest(secret: str) -> str:
    """The SHA-256 of a secret, in hex: what the store may know about it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_id_for(secret: str) -> UUID:
    """The id of the token whose secret this is (if there is one)."""
    return uuid5(TOKEN_NAMESPACE, "secret:" + secret_digest(secret))


def token_name_id_for(name: str) -> UUID:
    """The id of the index aggregate that claims ``name``."""
    return uuid5(TOKEN_NAMESPACE, "name:" + name)


class ApiToken(Aggregate):
    class Created(Aggregate.Created):
        """Version 2 added the token's permissions beyond the application endpoints:
        ``console``, signing in to the operator console, and ``allow_consent_override``,
        sending with ``"consent": "ignore"`` (legally required notices)."""

        class_version = 2

        name: str
        console: bool = False
        allow_consent_override: bool = False

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["console"] = False  # created before these permissions existed
            state["allow_consent_override"] = False

    class Revoked(Aggregate.Event):
        """The token stops working, for good. Nothing is recorded after it."""

    @event(Created)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: ARG002 - the library takes id
        name: str,
        console: bool = False,
        allow_consent_override: bool = False,
    ) -> None:
        self.name = name
        self.console = console
        self.allow_consent_override = allow_consent_override
        self.revoked = False

    @classmethod
    def issue(
        cls,
        name: str,
        secret: str,
        *,
        console: bool = False,
        allow_consent_override: bool = False,
    ) -> tuple[ApiToken, TokenName]:
        """A new token for ``secret``, and the index entry claiming its name.

        Save both in one ``Application.save`` call: that is what makes the name unique.
        """
        name = parse_token_name(name)
        token = cls(
            id=token_id_for(secret),
            name=name,
            console=console,
            allow_consent_override=allow_consent_override,
        )
        return token, TokenName.claim(name, token.id)

    def revoke(self) -> bool:
        """Revoke the token; return whether anything was recorded (False if it already was)."""
        if self.revoked:
            return False
        self._revoked()
        return True

    @event(Revoked)
    def _revoked(self) -> None:
        self.revoked = True

    @property
    def revoked_on(self) -> datetime | None:
        # Revoked is final and nothing is recorded after it, so the last event's time
        # is the moment of revocation.
        return self.modified_on if self.revoked else None


class TokenName(Aggregate):
    """The index entry that claims a token name, forever, for one token."""

    class Claimed(Aggregate.Created):
        token_id: UUID

    @event(Claimed)
    def __init__(self, *, id: UUID, token_id: UUID) -> None:  # noqa: ARG002 - the library takes id
        self.token_id = token_id

    @classmethod
    def claim(cls, name: str, token_id: UUID) -> TokenName:
        return cls(id=token_name_id_for(parse_token_name(name)), token_id=token_id)
