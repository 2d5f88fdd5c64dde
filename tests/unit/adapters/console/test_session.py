"""The console's session cookie: signed, expiring, refused when tampered with."""

from __future__ import annotations

import time
import uuid

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from conversa.adapters.console.session import COOKIE_NAME, Session, SessionCookies
from conversa.adapters.console.state import cookies_are_secure
from conversa.app.settings import Settings

KEY = b"k" * 32


def request_with(cookie: str) -> Request:
    header = f"{COOKIE_NAME}={cookie}".encode()
    return Request({"type": "http", "headers": [(b"cookie", header)], "method": "GET"})


def stored(cookies: SessionCookies, session: Session) -> str:
    response = Response()
    cookies.store(response, session)
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1]


def test_a_session_comes_back_as_it_was_signed() -> None:
    cookies = SessionCookies(KEY, minutes=60, secure=True)
    session = Session.signed_in_as(uuid.uuid4(), "ops")
    response = Response()
    cookies.store(response, session)
    header = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Max-Age=3600"):
        assert attribute in header
    loaded = cookies.load(request_with(stored(cookies, session)))
    assert loaded == session
    assert loaded is not None and loaded.signed_in


def test_a_cookie_signed_with_another_key_or_altered_is_no_session() -> None:
    session = Session.signed_in_as(uuid.uuid4(), "ops")
    cookie = stored(SessionCookies(b"other" * 8, minutes=60, secure=False), session)
    cookies = SessionCookies(KEY, minutes=60, secure=False)
    assert cookies.load(request_with(cookie)) is None
    good = stored(cookies, session)
    assert cookies.load(request_with(good)) == session
    for place in (5, len(good) - 3):  # the data, the signature
        altered = good[:place] + ("A" if good[place] != "A" else "B") + good[place + 1 :]
        assert cookies.load(request_with(altered)) is None


class _SignedLongAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 61 * 60


def test_a_session_older_than_its_minutes_is_over() -> None:
    cookies = SessionCookies(KEY, minutes=60, secure=False)
    old = URLSafeTimedSerializer(KEY, salt="conversa.console.session", signer=_SignedLongAgo)
    data = {"c": "csrf", "t": str(uuid.uuid4()), "n": "ops", "i": time.time() - 3660}
    assert cookies.load(request_with(old.dumps(data))) is None
    recent = URLSafeTimedSerializer(KEY, salt="conversa.console.session")
    assert cookies.load(request_with(recent.dumps(data))) is not None


def test_cookies_are_secure_when_the_public_url_is_https() -> None:
    def settings(url: str | None) -> Settings:
        environ = {"CONVERSA_DATABASE_URL": "sqlite:///x.sqlite3"}
        if url:
            environ["CONVERSA_WEBHOOK_BASE_URL"] = url
        return Settings.from_environ(environ)

    assert cookies_are_secure(settings("https://hooks.example.com"))
    assert not cookies_are_secure(settings("http://hooks.example.com"))
    assert not cookies_are_secure(settings(None))
