"""``/conversa/conversations``: conversation threads, both directions."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from conversa.adapters.http.errors import invalid
from conversa.adapters.http.messages import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    _positive_int,
    _recipient_filter,
)
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.state import application_request
from conversa.app.conversations import ConversationQuery
from conversa.app.messages import ConversationNotFound
from conversa.app.results import MessageState
from conversa.domain.channel import Channel

LIST_PARAMETERS = frozenset({"channel", "contact", "page", "per_page"})
SHOW_PARAMETERS = frozenset({"page", "per_page"})


def _page(request: Request) -> tuple[int, int]:
    params = request.query_params
    return (
        _positive_int(params.get("page"), "page", default=1, maximum=1_000_000),
        _positive_int(
            params.get("per_page"), "per_page", default=DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE
        ),
    )


async def list_conversations(request: Request) -> JSONResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, LIST_PARAMETERS)
    channel = request.query_params.get("channel")
    if channel is not None and channel not in Channel._value2member_map_:
        raise invalid("channel", f"channel must be one of {', '.join(c.value for c in Channel)}")
    contact = request.query_params.get("contact")
    page, per_page = _page(request)
    query = ConversationQuery(
        channel=channel,
        contact=None if contact is None else _recipient_filter(contact, "contact"),
        page=page,
        per_page=per_page,
    )
    found = await run_in_threadpool(context.service.list_conversations, query)
    return JSONResponse(
        {
            "data": [row.as_dict() for row in found.rows],
            "meta": {"page": page, "per_page": per_page, "total": found.total},
        }
    )


async def show_conversation(request: Request) -> JSONResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, SHOW_PARAMETERS)
    raw_id = request.path_params["conversation_id"]
    try:
        conversation_id = uuid.UUID(raw_id)
    except ValueError:
        raise ConversationNotFound(raw_id) from None
    page, per_page = _page(request)
    row, messages = await run_in_threadpool(
        context.service.conversation, conversation_id, page, per_page
    )
    return JSONResponse(
        {
            **row.as_dict(),
            "messages": [MessageState.of_row(m).as_dict() for m in messages],
            "meta": {
                "page": page,
                "per_page": per_page,
                "total": row.inbound_count + row.outbound_count,
            },
        }
    )
