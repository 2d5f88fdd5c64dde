"""The console's pages: one module each, exposing ``ROUTES`` (paths relative to the prefix).

To add a page: write ``pages/<name>.py`` with handlers wrapped in
:func:`conversa.adapters.console.web.signed_in` and a ``ROUTES`` list, add a template that
extends ``base.html``, and list the module below (the navigation is in ``base.html``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from conversa.adapters.console.pages import (
    conversations,
    message,
    messages,
    overview,
    recipients,
    session,
)

ROUTES: list[BaseRoute] = [
    *session.ROUTES,
    *messages.ROUTES,
    *message.ROUTES,
    *conversations.ROUTES,
    *recipients.ROUTES,
    *overview.ROUTES,
]
