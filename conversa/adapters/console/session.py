"""The console's session: a signed cookie, nothing kept on the server.

The cookie holds the token's id and name, the session's CSRF token and the moment of the
sign-in, signed with HMAC-SHA1 and timestamped by itsdangerous. It is ``HttpOnly``,
``SameSite=Strict``, ``Secure`` when the public URL (``CONVERSA_WEBHOOK_BASE_URL``) is
https, limited to the console's path, and valid for ``CONVERSA_CONSOLE_SESSION_MINUTES``
from the sign-in: the signature's timestamp is checked on every request and the cookie is
never re-signed, so a session cannot be stretched by using it. Before the sign-in the
cookie holds only a CSRF token, for the sign-in form.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "conversa_console"
COOKIE_PATH = "/conversa/console"
_SALT = "conversa.console.session"


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    token_id: UUID | None = None
    token_name: str | None = None
    signed_in_at: float | None = None

    @property
    def signed_in(self) -> bool:
        return self.token_id is not None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def signed_in_as(cls, token_id: UUID, token_name: str) -> Session:
        """A new session (with a new CSRF token) for the token."""
        return cls(
            csrf=secrets.token_urlsafe(32),
            token_id=token_id,
            token_name=token_name,
            signed_in_at=time.time(),
        )


class SessionCookies:
    def __init__(self, key: bytes, *, minutes: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.max_age = minutes * 60
        self.secure = secure

    def load(self, request: Request) -> Session | None:
        """The request's session, or None (no cookie, a bad signature, expired)."""
        raw = request.cookies.get(COOKIE_NAME)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        token = data.get("t")
        name = data.get("n")
        at = data.get("i")
        if token is None:
            return Session(csrf=data["c"])
        if not (isinstance(token, str) and isinstance(name, str) and isinstance(at, float | int)):
            return None
        try:
            token_id = UUID(token)
        except ValueError:
            return None
        return Session(csrf=data["c"], token_id=token_id, token_name=name, signed_in_at=at)

    def store(self, response: Response, session: Session) -> None:
        data: dict[str, object] = {"c": session.csrf}
        if session.token_id is not None:
            data.update(t=str(session.token_id), n=session.token_name, i=session.signed_in_at)
        response.set_cookie(
            COOKIE_NAME,
            self._serializer.dumps(data),
            max_age=self.max_age,
            path=COOKIE_PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict"
        )
