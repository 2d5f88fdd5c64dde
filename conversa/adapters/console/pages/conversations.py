"""Conversations: the list, a thread (both directions, like a chat, with the WhatsApp
window's remaining time), the reply box, and the number reveal."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conversa.adapters.console.filters import CHANNELS
from conversa.adapters.console.state import PREFIX
from conversa.adapters.console.web import (
    Operator,
    form_of,
    path_uuid,
    render,
    service_of,
    signed_in,
)
from conversa.app.conversations import ConversationQuery, ConversationRow
from conversa.app.messages import ConversationNotFound
from conversa.app.projection import MessageRow
from conversa.app.service import ConversaService
from conversa.domain.errors import ConversaError, InvalidRequest
from conversa.domain.phone import PhoneNumber

log = logging.getLogger(__name__)

PER_PAGE = 50
THREAD_PAGE = 50
#: Pages of a thread searched (newest first) for the inbound message a reply answers.
REPLY_SEARCH_PAGES = 5
MAX_REPLY = 4096
#: The longest a reply waits for the read model to list it before the thread is shown.
PROJECTION_WAIT_SECONDS = 3.0


@signed_in
async def conversations(request: Request, operator: Operator) -> Response:
    params = request.query_params
    channel = params.get("channel", "")
    number = params.get("number", "").strip()
    error = None
    contact = None
    if number:
        try:
            contact = PhoneNumber.parse(_digits(number), field="number").e164
        except InvalidRequest:
            error = "number must be a phone number with its country code"
    raw_page = params.get("page", "1")
    page = min(int(raw_page), 10_000) if raw_page.isdigit() and int(raw_page) > 0 else 1
    query = ConversationQuery(
        channel=channel if channel in CHANNELS else None,
        contact=contact,
        page=page,
        per_page=PER_PAGE,
    )
    found = await run_in_threadpool(service_of(request).list_conversations, query)
    pages = max(1, -(-found.total // PER_PAGE))
    base = f"{PREFIX}/conversations?channel={query.channel or ''}&number={contact or ''}"
    context = {
        "found": found,
        "channels": CHANNELS,
        "channel": query.channel or "",
        "number": contact or number,
        "error": error,
        "page_number": page,
        "pages": pages,
        "page_url": lambda n: f"{base}&page={n}",
        "now": datetime.now(UTC),
    }
    return render(request, operator, "conversations.html", context)


@dataclass(frozen=True, slots=True)
class Thread:
    conversation: ConversationRow
    messages: list[MessageRow]
    page: int
    pages: int


@signed_in
async def thread(request: Request, operator: Operator) -> Response:
    return await _thread_page(request, operator)


@signed_in
async def reveal(request: Request, operator: Operator) -> Response:
    response = await _thread_page(request, operator, revealed=True)
    if response.status_code == 200:
        log.info(
            "console number reveal token=%s conversation_id=%s",
            operator.token_name,
            request.path_params["conversation_id"],
        )
    return response


@signed_in
async def parts(request: Request, operator: Operator) -> Response:
    """The window and the thread alone, for the page's live updates."""
    return await _thread_page(request, operator, template="conversation_parts.html")


@signed_in
async def reply(request: Request, operator: Operator) -> Response:
    conversation_id = path_uuid(request, "conversation_id")
    form = await form_of(request)
    body = form.get("body", "")
    key = form.get("idempotency_key") or secrets.token_urlsafe(16)
    if conversation_id is None:
        return await _thread_page(request, operator)
    if not body.strip():
        return await _thread_page(request, operator, error="Write a reply first.", body=body)
    if len(body) > MAX_REPLY:
        return await _thread_page(
            request, operator, error=f"A reply is at most {MAX_REPLY} characters.", body=body
        )
    service = service_of(request)
    try:
        outcome = await run_in_threadpool(_send_reply, service, conversation_id, body, key)
    except ConversationNotFound:
        return await _thread_page(request, operator)
    except ConversaError as refused:
        return await _thread_page(request, operator, error=refused.message, body=body, key=key)
    if outcome is not None:
        return await _thread_page(request, operator, error=outcome, body=body)
    log.info("console reply token=%s conversation_id=%s", operator.token_name, conversation_id)
    return RedirectResponse(f"{PREFIX}/conversations/{conversation_id}#reply", status_code=303)


def _send_reply(service: ConversaService, conversation_id: UUID, body: str, key: str) -> str | None:
    """Send the reply; None when the provider took it, else why not."""
    conversation, _ = service.conversation(conversation_id, 1, 1)
    answered = _latest_inbound(service, conversation)
    opts: dict[str, Any] = {"idempotency_key": f"console-{key}"}
    if answered is not None:
        opts["reply_to"] = str(answered)  # its channel, its sender, from the number it reached
    elif conversation.business_number:
        opts["from"] = conversation.business_number
    result = service.send(conversation.channel, conversation.contact, {"body": body}, opts)
    if result.ok or result.status == "queued":
        _until_listed(service, result.message_id)
        return None
    error = result.error or {}
    return f"Not sent: {error.get('message') or result.status} ({error.get('code', '')})"


def _until_listed(service: ConversaService, message_id: UUID) -> None:
    """Wait (briefly) for the projection to list the reply, so that the thread the operator
    is sent back to shows it."""
    deadline = time.monotonic() + PROJECTION_WAIT_SECONDS
    while service.view.get(message_id) is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _latest_inbound(service: ConversaService, conversation: ConversationRow) -> UUID | None:
    if conversation.inbound_count == 0:
        return None
    total = conversation.inbound_count + conversation.outbound_count
    last = max(1, -(-total // THREAD_PAGE))
    for page in range(last, max(0, last - REPLY_SEARCH_PAGES), -1):
        rows = service.view.thread(conversation.id, page, THREAD_PAGE)
        for row in reversed(rows):
            if row.direction == "inbound":
                return row.id
    return None


async def _thread_page(
    request: Request,
    operator: Operator,
    *,
    revealed: bool = False,
    error: str | None = None,
    body: str = "",
    key: str | None = None,
    template: str = "conversation.html",
) -> Response:
    conversation_id = path_uuid(request, "conversation_id")
    raw_page = request.query_params.get("page", "")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) <= 100_000 else None
    found = None
    if conversation_id is not None:
        found = await run_in_threadpool(_load_thread, service_of(request), conversation_id, page)
    if found is None:
        return render(
            request,
            operator,
            "not_found.html",
            {"what": "conversation", "id": request.path_params["conversation_id"]},
            status_code=404,
        )
    now = datetime.now(UTC)
    window = found.conversation.window_expires_at
    context = {
        "t": found,
        "c": found.conversation,
        "revealed": revealed,
        "error": error,
        "body": body,
        "idempotency_key": key or secrets.token_urlsafe(16),
        "now": now,
        "window_left": None if window is None else (window - now).total_seconds(),
        "page_url": lambda n: f"{PREFIX}/conversations/{found.conversation.id}?page={n}",
        "live_parts": f"{PREFIX}/conversations/{found.conversation.id}/parts"
        + ("" if found.page == found.pages else f"?page={found.page}"),
    }
    return render(request, operator, template, context, status_code=422 if error else 200)


def _load_thread(
    service: ConversaService, conversation_id: UUID, page: int | None
) -> Thread | None:
    try:
        conversation, _ = service.conversation(conversation_id, 1, 1)
    except ConversationNotFound:
        return None
    total = conversation.inbound_count + conversation.outbound_count
    pages = max(1, -(-total // THREAD_PAGE))
    page = min(page or pages, pages)
    messages = service.view.thread(conversation_id, page, THREAD_PAGE)
    return Thread(conversation, messages, page, pages)


def _digits(raw: str) -> str:
    text = "".join(ch for ch in raw if ch.isdigit() or ch == "+")
    if text.startswith("00"):
        return "+" + text[2:]
    return text if text.startswith("+") else "+" + text


ROUTES = [
    Route("/conversations", conversations, methods=["GET"]),
    Route("/conversations/{conversation_id}", thread, methods=["GET"]),
    Route("/conversations/{conversation_id}/reveal", reveal, methods=["POST"]),
    Route("/conversations/{conversation_id}/reply", reply, methods=["POST"]),
    Route("/conversations/{conversation_id}/parts", parts, methods=["GET"]),
]
