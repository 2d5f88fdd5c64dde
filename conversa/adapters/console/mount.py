"""The console as one Starlette ``Mount``, added to the application by ``http/app.py``."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from conversa.adapters.console.headers import SecurityHeadersMiddleware
from conversa.adapters.console.pages import ROUTES
from conversa.adapters.console.pages.session import home
from conversa.adapters.console.state import PREFIX

STATIC_DIRECTORY = Path(__file__).parent / "static"


def console_routes() -> list[BaseRoute]:
    """Every page under ``/conversa/console``, its static files under ``.../static``, and
    the security headers on every response of either (the bare prefix too)."""
    return [
        Route(PREFIX, home, methods=["GET"], middleware=[Middleware(SecurityHeadersMiddleware)]),
        console_mount(),
    ]


def console_mount() -> Mount:
    return Mount(
        PREFIX,
        routes=[
            *ROUTES,
            Mount("/static", app=StaticFiles(directory=STATIC_DIRECTORY), name="static"),
        ],
        middleware=[Middleware(SecurityHeadersMiddleware)],
    )
