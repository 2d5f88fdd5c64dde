"""``POST /conversa/messages/batch``: up to 1,000 messages in one request, each recorded or
refused on its own, all sent afterwards by the dispatcher."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from conversa.adapters.http.bodies import read_json_object
from conversa.adapters.http.errors import invalid
from conversa.adapters.http.messages import check_consent_permission, valid_idempotency_key
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.state import application_request, http_state
from conversa.app.accept import MAX_BATCH, BatchItemResult
from conversa.app.service import MAX_IDEMPOTENCY_KEY, ConversaService
from conversa.domain.errors import IdempotencyKeyMismatch, InvalidRequest

#: The largest batch body: 1,000 messages of a few kilobytes each.
MAX_BATCH_BODY = 8 * 1024 * 1024


async def send_batch(request: Request) -> Response:
    context = await application_request(request)
    refuse_unknown_parameters(request, ())
    document = await read_json_object(request, MAX_BATCH_BODY)
    unknown = sorted(set(document) - {"messages"})
    if unknown:
        raise invalid(unknown[0], f"unknown field {unknown[0]}")
    items = document.get("messages")
    if not isinstance(items, list):
        raise invalid("messages", "messages must be a list of message objects")
    if not 1 <= len(items) <= MAX_BATCH:
        raise invalid("messages", f"messages must hold 1 to {MAX_BATCH} messages")
    check_consent_permission(context.token, items)
    refused: dict[int, InvalidRequest] = {}
    for index, item in enumerate(items):
        key = item.get("idempotency_key") if isinstance(item, dict) else None
        if key is not None and not (isinstance(key, str) and valid_idempotency_key(key)):
            refused[index] = InvalidRequest(
                "idempotency_key",
                f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
            )
    accepted = [i for i in range(len(items)) if i not in refused]
    body, created = await run_in_threadpool(
        _send_and_render, context.service, items, accepted, refused, str(context.token.id)
    )
    counter = http_state(request).metrics.messages_sent
    for channel, status in created:
        counter.labels(channel, status).inc()
    return Response(body, status_code=202, media_type="application/json")


def _send_and_render(
    service: ConversaService,
    items: list[Any],
    accepted: list[int],
    refused: dict[int, InvalidRequest],
    scope: str,
) -> tuple[bytes, list[tuple[str, str]]]:
    """Record the batch and render the answer, both off the event loop: a thousand
    message resources take a while to encode, and other requests should not wait."""
    results = service.send_batch([items[i] for i in accepted], scope=scope)
    by_index: dict[int, dict[str, Any]] = {
        index: _refused(index, error) for index, error in refused.items()
    }
    created: list[tuple[str, str]] = []
    for index, outcome in zip(accepted, results, strict=True):
        by_index[index] = _item(index, outcome)
        if outcome.result is not None and not outcome.result.replayed:
            created.append((outcome.result.message.channel, outcome.result.status))
    document = {"data": [by_index[i] for i in range(len(items))]}
    body = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return body.encode(), created


def _item(index: int, outcome: BatchItemResult) -> dict[str, Any]:
    if outcome.error is not None:
        return _refused(index, outcome.error)
    assert outcome.result is not None
    return {
        "index": index,
        "status": 200 if outcome.result.replayed else 201,
        "message": outcome.result.message.as_dict(),
    }


def _refused(index: int, error: Exception) -> dict[str, Any]:
    message = getattr(error, "message", str(error))
    fields: dict[str, str] = {}
    if isinstance(error, InvalidRequest):
        fields = {error.field: message}
    elif isinstance(error, IdempotencyKeyMismatch):
        fields = {"idempotency_key": message}
    code = getattr(error, "code", "invalid_request")
    return {
        "index": index,
        "status": 422,
        "error": {"code": code, "message": message, "fields": fields},
    }
