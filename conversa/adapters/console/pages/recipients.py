"""The Recipients page (placeholder: the overview helper fills it in)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.web import Operator, render, signed_in


@signed_in
async def recipients(request: Request, operator: Operator) -> Response:
    return render(request, operator, "recipients.html")


ROUTES = [Route("/recipients", recipients, methods=["GET"])]
