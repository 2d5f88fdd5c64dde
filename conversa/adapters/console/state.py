"""What the console keeps per server process, built on its first request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from cachetools import TTLCache
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from conversa.adapters.console import formats
from conversa.adapters.console.keys import console_key
from conversa.adapters.console.session import SessionCookies
from conversa.adapters.http.auth import TOKEN_CACHE_SECONDS
from conversa.adapters.http.state import http_state
from conversa.app.service import ConversaService

PREFIX = "/conversa/console"


class TokenGate:
    """Whether a signed-in token is still active, asked of the store at most every
    :data:`~conversa.adapters.http.auth.TOKEN_CACHE_SECONDS` (5 s) per token: revoking a
    token ends its console sessions within that time."""

    def __init__(self, service: ConversaService, *, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self._service = service
        self._active: TTLCache[UUID, bool] = TTLCache(10_000, ttl)
        self._lock = threading.Lock()

    async def is_active(self, token_id: UUID) -> bool:
        with self._lock:
            known = self._active.get(token_id)
        if known is not None:
            return known
        active = await run_in_threadpool(self._service.tokens.is_active, token_id)
        with self._lock:
            self._active[token_id] = active
        return active


@dataclass(frozen=True, slots=True)
class ConsoleState:
    service: ConversaService
    cookies: SessionCookies
    templates: Environment
    tokens: TokenGate

    @classmethod
    def build(cls, service: ConversaService) -> ConsoleState:
        settings = service.settings
        secure = (settings.webhook_base_url or "").startswith("https://")
        return cls(
            service=service,
            cookies=SessionCookies(
                console_key(settings), minutes=settings.console_session_minutes, secure=secure
            ),
            templates=template_environment(),
            tokens=TokenGate(service),
        )


def template_environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("conversa.adapters.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["prefix"] = PREFIX
    environment.filters.update(formats.FILTERS)
    environment.globals["now"] = lambda: datetime.now(UTC)
    return environment


_build_lock = threading.Lock()


def console_state(request: Request) -> ConsoleState:
    """The process's console state, built from its service on the first console request."""
    app_state = request.app.state
    state: ConsoleState | None = getattr(app_state, "console", None)
    if state is None:
        with _build_lock:
            state = getattr(app_state, "console", None)
            if state is None:
                state = ConsoleState.build(http_state(request).service)
                app_state.console = state
    return state
