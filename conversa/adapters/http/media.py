"""``GET /conversa/messages/{id}/media/{n}``: an inbound attachment, streamed from its
provider through the provider's authenticated download, never stored."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conversa.adapters.http.errors import ApiError
from conversa.adapters.http.messages import path_message_id
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.state import application_request
from conversa.adapters.providers.media import MediaTooLarge, MediaUnavailable, open_media
from conversa.app.messages import MessageNotFound


async def message_media(request: Request) -> Response:
    context = await application_request(request)
    refuse_unknown_parameters(request, ())
    message_id, raw_n = path_message_id(request), request.path_params["n"]
    inbound = await run_in_threadpool(context.service.get_inbound, message_id)
    if inbound is None:
        raise MessageNotFound(message_id)
    if not (raw_n.isascii() and raw_n.isdigit()) or int(raw_n) >= len(inbound.media):
        raise ApiError(404, "not_found", f"the message has no attachment {raw_n}")
    settings = context.service.settings
    try:
        stream = await open_media(
            settings, inbound.provider, inbound.media[int(raw_n)], settings.media_max_bytes
        )
    except MediaTooLarge as error:
        raise ApiError(502, "media_too_large", str(error)) from None
    except MediaUnavailable as error:
        raise ApiError(502, "media_unavailable", str(error)) from None
    headers = {"Cache-Control": "private, no-store"}
    if stream.length is not None:
        headers["Content-Length"] = str(stream.length)
    return StreamingResponse(stream.chunks, media_type=stream.content_type, headers=headers)
