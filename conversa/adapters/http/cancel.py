"""``POST /conversa/messages/{id}/cancel``: cancel a message no attempt has started for."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from conversa.adapters.http.errors import ApiError
from conversa.adapters.http.messages import path_message_id
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.responses import JsonResponse
from conversa.adapters.http.state import application_request
from conversa.app.scheduling import AlreadyAttempted


async def cancel_message(request: Request) -> JsonResponse:
    """200 and the cancelled message (again on a second cancel); 409 ``already_attempted``
    once an attempt has started; 404 for an id that names no outbound message."""
    context = await application_request(request)
    refuse_unknown_parameters(request, ())
    message_id = path_message_id(request)
    try:
        state = await run_in_threadpool(context.service.cancel, message_id)
    except AlreadyAttempted as error:
        raise ApiError(409, error.code, error.message) from None
    return JsonResponse(state.as_dict())
