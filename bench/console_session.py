"""The real application in this process, with a signed-in console session.

Signs in the way the console's own sign-in does after checking a token: a console session
cookie for an active token, signed with the console's key (the same key the application
reads, from the same settings). Used by ``bench.console`` and the console's tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.cookies import SimpleCookie

from starlette.responses import Response
from starlette.testclient import TestClient

from conversa.adapters.console.session import COOKIE_NAME, Session
from conversa.adapters.console.state import ConsoleState
from conversa.adapters.http.app import create_app
from conversa.app.service import ConversaService


def session_cookie(service: ConversaService, token_name: str) -> tuple[str, str]:
    """A new token named ``token_name`` and a signed-in session of it: the cookie's value
    and the session's CSRF token."""
    info, _secret = service.tokens.create(token_name)
    session = Session.signed_in_as(info.id, info.name)
    response = Response()
    ConsoleState.build(service).cookies.store(response, session)
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie[COOKIE_NAME].value, session.csrf


@contextlib.contextmanager
def signed_in_client(
    service: ConversaService, token_name: str = "bench-operator"
) -> Iterator[TestClient]:
    """A client of the whole application (around ``service``, which it closes on exit,
    as a server does), signed in to the console; ``client.csrf`` holds the form token."""
    value, csrf = session_cookie(service, token_name)
    app = create_app(lambda: service, run_worker=False)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        client.cookies.set(COOKIE_NAME, value, path="/conversa/console")
        client.csrf = csrf
        yield client
