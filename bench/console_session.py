"""The real application in this process, with a signed-in console session.

Signs in the way the console's own sign-in does after checking a token: a console session
cookie for an active token, signed with the console's key (the same key the application
reads, from the same settings). Requests go through httpx's ASGI transport, the
application's lifespan running in a portal thread, as the HTTP tests do. Used by
``bench.console`` and the console's tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.cookies import SimpleCookie
from typing import Any
from unittest.mock import patch

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.responses import Response

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


@dataclass
class ConsoleClient:
    """Synchronous calls into the application, whose event loop runs in a portal thread."""

    client: httpx.AsyncClient
    portal: BlockingPortal
    csrf: str

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@contextlib.contextmanager
def signed_in_client(
    service: ConversaService, token_name: str = "bench-operator"
) -> Iterator[ConsoleClient]:
    """The whole application around ``service`` (left open), signed in to the console."""
    value, csrf = session_cookie(service, token_name)
    app = create_app(lambda: service, run_worker=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        patch.object(service, "close", lambda: None),  # the lifespan's end must not close it
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        client = httpx.AsyncClient(
            transport=transport,
            base_url="https://conversa.test",
            cookies={COOKIE_NAME: value},
            headers={"sec-fetch-site": "same-origin"},
        )
        with portal.wrap_async_context_manager(client):
            yield ConsoleClient(client, portal, csrf)
