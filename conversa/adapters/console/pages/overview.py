"""The Overview page (placeholder: the overview helper fills it in)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.web import Operator, render, signed_in


@signed_in
async def overview(request: Request, operator: Operator) -> Response:
    return render(request, operator, "overview.html")


ROUTES = [Route("/overview", overview, methods=["GET"])]
