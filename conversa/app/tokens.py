"""API tokens: create, authenticate, revoke and list them.

A secret is ``cnv_`` and 32 random bytes (URL-safe base64). It is returned once, by
``create``, and stored nowhere: the token's id is derived from the secret's SHA-256 (see
:mod:`conversa.domain.token`), so ``authenticate`` is a single read by id and the store
holds nothing that could be turned back into a secret. The prefix lets secret scanners
recognise a leaked token, and lets ``authenticate`` refuse obvious garbage without a read.
"""

from __future__ import annotations

import builtins
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from conversa.app.application import ConversaApp
from conversa.app.results import rfc3339
from conversa.domain.token import (
    ApiToken,
    TokenName,
    TokenNameTaken,
    parse_token_name,
    token_id_for,
    token_name_id_for,
)

__all__ = ["TokenInfo", "TokenNameTaken", "TokenNotFound", "TokenService"]

log = logging.getLogger(__name__)

SECRET_PREFIX = "cnv_"
SECRET_BYTES = 32
#: What a secret can look like: the prefix and URL-safe base64. 32 bytes make 43
#: characters; the range leaves room to lengthen secrets without refusing older ones.
_SECRET = re.compile(r"cnv_[A-Za-z0-9_-]{32,128}")
#: Notifications read per query when listing tokens.
LIST_PAGE = 500


def is_well_formed_secret(secret: object) -> bool:
    """Whether ``secret`` has the shape of a secret this service hands out; one that does
    not cannot belong to any token, and needs no lookup."""
    return isinstance(secret, str) and _SECRET.fullmatch(secret) is not None


class TokenNotFound(LookupError):
    code = "token_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no token named {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown about a token: everything except its secret."""

    id: UUID
    name: str
    created_at: datetime
    revoked_at: datetime | None
    #: May sign in to the operator console.
    console: bool = False
    #: May send with ``"consent": "ignore"``.
    allow_consent_override: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def status(self) -> str:
        return "active" if self.active else "revoked"

    def as_dict(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "name": self.name,
            "status": self.status,
            "created_at": rfc3339(self.created_at),
            "revoked_at": rfc3339(self.revoked_at) if self.revoked_at else None,
            "console": self.console,
            "allow_consent_override": self.allow_consent_override,
        }

    @classmethod
    def of(cls, token: ApiToken) -> TokenInfo:
        return cls(
            id=token.id,
            name=token.name,
            created_at=token.created_on,
            revoked_at=token.revoked_on,
            console=token.console,
            allow_consent_override=token.allow_consent_override,
        )


class TokenService:
    def __init__(self, app: ConversaApp) -> None:
        self.app = app

    def create(
        self, name: str, *, console: bool = False, allow_consent_override: bool = False
    ) -> tuple[TokenInfo, str]:
        """Make a token; return it and its secret, which is not kept and cannot be shown again.

        ``console``: it may also sign in to the operator console; ``allow_consent_override``:
        it may send with ``"consent": "ignore"``.

        Raises ``InvalidTokenName`` for a bad name and ``TokenNameTaken`` when a token of
        that name exists or ever existed; either way nothing is stored.
        """
        name = parse_token_name(name)
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        token, claim = ApiToken.issue(
            name, secret, console=console, allow_consent_override=allow_consent_override
        )
        try:
            # One transaction: the token is stored only if its name was free.
            self.app.save(token, claim)
        except IntegrityError:
            if claim.id in self.app.repository:
                raise TokenNameTaken(name) from None
            raise  # not the name: a clash of 256-bit random secrets would be news
        log.info("created api token name=%s id=%s", token.name, token.id)
        return TokenInfo.of(token), secret

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The active token this secret belongs to, or None (unknown, malformed, revoked)."""
        if not is_well_formed_secret(secret):
            return None
        try:
            token: object = self.app.repository.get(token_id_for(secret))
        except AggregateNotFoundError:
            return None
        if not isinstance(token, ApiToken) or token.revoked:
            return None
        return TokenInfo.of(token)

    def is_active(self, token_id: UUID) -> bool:
        """Whether the token of this id exists and is not revoked: one read by id, for a
        caller that already authenticated it and must notice a revocation (a long stream)."""
        try:
            token: object = self.app.repository.get(token_id)
        except AggregateNotFoundError:
            return False
        return isinstance(token, ApiToken) and not token.revoked

    def revoke(self, name: str) -> TokenInfo:
        """Revoke the token of this name for good; revoking it again changes nothing."""
        token = self._token_named(parse_token_name(name))
        if token.revoke():
            try:
                self.app.save(token)
            except IntegrityError:
                # Another process recorded an event first, and the only event a token
                # can have after its creation is Revoked: report that one.
                return TokenInfo.of(self._token_named(name))
            log.info("revoked api token name=%s id=%s", token.name, token.id)
        return TokenInfo.of(token)

    def list(self) -> builtins.list[TokenInfo]:
        """Every token ever created, revoked ones included, oldest first."""
        topics = [get_topic(ApiToken.Created)]
        tokens: builtins.list[TokenInfo] = []
        start: int | None = None
        while True:
            page = self.app.recorder.select_notifications(
                start=start, limit=LIST_PAGE, topics=topics, inclusive_of_start=False
            )
            for notification in page:
                originator = notification.originator_id  # typed UUID | str by the library
                token: object = self.app.repository.get(
                    UUID(originator) if isinstance(originator, str) else originator
                )
                if isinstance(token, ApiToken):
                    tokens.append(TokenInfo.of(token))
            if len(page) < LIST_PAGE:
                return tokens
            start = page[-1].id

    def _token_named(self, name: str) -> ApiToken:
        try:
            claim: object = self.app.repository.get(token_name_id_for(name))
        except AggregateNotFoundError:
            raise TokenNotFound(name) from None
        if not isinstance(claim, TokenName):
            raise TokenNotFound(name)
        token: object = self.app.repository.get(claim.token_id)
        if not isinstance(token, ApiToken):
            raise TokenNotFound(name)
        return token
