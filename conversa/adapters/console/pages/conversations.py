"""The Conversations page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.web import Operator, render, signed_in


@signed_in
async def conversations(request: Request, operator: Operator) -> Response:
    return render(request, operator, "conversations.html")


ROUTES = [Route("/conversations", conversations, methods=["GET"])]
