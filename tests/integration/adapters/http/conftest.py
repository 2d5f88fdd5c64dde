"""The real Starlette application in process, around a real ConversaService (SQLite file or
PostgreSQL schema, as ``backend_url`` says), called through httpx's ASGI transport."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from conversa.adapters.http.app import create_app
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from tests.support import make_settings

PUBLIC = "https://hooks.example.com"
APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "meta-verify-token-for-tests"
TWILIO_TOKEN = "twilio-auth-token-for-tests"


@pytest.fixture
def settings(backend_url: str) -> Settings:
    """Every webhook secret configured, so that signed callbacks reach their parsers, and a
    rate limit that many requests do not reach."""
    return make_settings(
        backend_url,
        rate_limit="1000000/minute",
        webhook_base_url=PUBLIC,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        twilio_token=TWILIO_TOKEN,
    )


@dataclass
class Api:
    """Synchronous calls into the application, whose event loop runs in a portal thread."""

    client: httpx.AsyncClient
    portal: BlockingPortal
    service: ConversaService
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@contextmanager
def running_api(service: ConversaService) -> Iterator[Api]:
    """The application around ``service``, its lifespan running, with a new valid token.
    The caller closes the service."""
    _info, secret = service.tokens.create(f"in-process-{uuid.uuid4().hex[:8]}")
    app = create_app(lambda: service, run_worker=False)
    # raise_app_exceptions=False: an unhandled error is answered as the server would
    # (500), so that a test sees it as a status code.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        patch.object(service, "close", lambda: None),  # the lifespan's end must not close it
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        client = httpx.AsyncClient(transport=transport, base_url="http://conversa")
        with portal.wrap_async_context_manager(client):
            yield Api(client, portal, service, secret)


@pytest.fixture
def api(service: ConversaService) -> Iterator[Api]:
    """The application with its lifespan running, and a valid token."""
    with running_api(service) as running:
        yield running
