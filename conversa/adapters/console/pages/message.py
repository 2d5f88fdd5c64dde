"""A message's page: its facts, its timeline, its body and provider response, links to its
conversation and fallback; and the number reveal (a POST, logged with the token's name)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conversa.adapters.console.state import PREFIX
from conversa.adapters.console.timeline import Entry, timeline
from conversa.adapters.console.web import Operator, path_uuid, render, service_of, signed_in
from conversa.app.messages import MessageNotFound
from conversa.app.results import MessageState
from conversa.app.service import ConversaService
from conversa.domain.message import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Detail:
    message: MessageState
    entries: list[Entry]
    provider_response: str | None


@signed_in
async def show(request: Request, operator: Operator) -> Response:
    return await _page(request, operator, revealed=False)


@signed_in
async def reveal(request: Request, operator: Operator) -> Response:
    return await _page(request, operator, revealed=True)


@signed_in
async def parts(request: Request, operator: Operator) -> Response:
    """The status and the timeline alone, for the page's live updates."""
    return await _page(request, operator, revealed=False, template="message_parts.html")


async def _page(
    request: Request, operator: Operator, *, revealed: bool, template: str = "message.html"
) -> Response:
    message_id = path_uuid(request, "message_id")
    detail = None
    if message_id is not None:
        detail = await run_in_threadpool(load_detail, service_of(request), message_id)
    if detail is None:
        return render(
            request,
            operator,
            "not_found.html",
            {"what": "message", "id": request.path_params["message_id"]},
            status_code=404,
        )
    if revealed:
        log.info("console number reveal token=%s message_id=%s", operator.token_name, message_id)
    context: dict[str, Any] = {
        "detail": detail,
        "m": detail.message,
        "revealed": revealed,
        "live_parts": f"{PREFIX}/messages/{message_id}/parts",
    }
    return render(request, operator, template, context)


def load_detail(service: ConversaService, message_id: UUID) -> Detail | None:
    try:
        state, events = service.message_history(message_id)
    except MessageNotFound:
        return None
    response = None
    if state.direction == "outbound":
        aggregate: object
        try:
            aggregate = service.app.repository.get(message_id)
        except AggregateNotFoundError:
            aggregate = None
        if isinstance(aggregate, Message) and aggregate.provider_response is not None:
            response = json.dumps(aggregate.provider_response, indent=2, sort_keys=True)
    return Detail(message=state, entries=timeline(events), provider_response=response)


ROUTES = [
    Route("/messages/{message_id}", show, methods=["GET"]),
    Route("/messages/{message_id}/reveal", reveal, methods=["POST"]),
    Route("/messages/{message_id}/parts", parts, methods=["GET"]),
]
