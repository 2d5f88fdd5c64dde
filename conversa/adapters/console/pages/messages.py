"""The Messages page: the log, filtered and paged, from the read model; its rows alone
(what the page's script fetches when the live stream says something changed)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.filters import (
    CHANNELS,
    DIRECTIONS,
    DRIVERS,
    STATUSES,
    ListFilters,
    parse_filters,
)
from conversa.adapters.console.pages import live
from conversa.adapters.console.state import PREFIX
from conversa.adapters.console.web import Operator, render, service_of, signed_in


@signed_in
async def messages(request: Request, operator: Operator) -> Response:
    filters = parse_filters(request.query_params)
    context = await _listing(request, filters)
    context.update(
        statuses=STATUSES,
        channels=CHANNELS,
        directions=DIRECTIONS,
        drivers=DRIVERS,
        rows_url=filters.url(path=f"{PREFIX}/messages/rows"),
        stream_url=f"{PREFIX}/live",
    )
    return render(request, operator, "messages.html", context)


@signed_in
async def rows(request: Request, operator: Operator) -> Response:
    filters = parse_filters(request.query_params)
    return render(request, operator, "message_rows.html", await _listing(request, filters))


async def _listing(request: Request, filters: ListFilters) -> dict[str, Any]:
    page = await run_in_threadpool(service_of(request).list_messages, filters.query)
    pages = max(1, -(-page.total // filters.query.per_page))
    return {
        "filters": filters,
        "page": page,
        "page_number": filters.query.page,
        "pages": pages,
        "page_url": lambda n: filters.url(page=n, path=f"{PREFIX}/messages"),
    }


ROUTES = [
    Route("/messages", messages, methods=["GET"]),
    Route("/messages/rows", rows, methods=["GET"]),
    Route("/live", live.stream, methods=["GET"]),
]
