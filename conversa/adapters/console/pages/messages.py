"""The Messages page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.web import Operator, render, signed_in


@signed_in
async def messages(request: Request, operator: Operator) -> Response:
    return render(request, operator, "messages.html")


ROUTES = [Route("/messages", messages, methods=["GET"])]
