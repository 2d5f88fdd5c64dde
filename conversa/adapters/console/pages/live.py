"""``GET /conversa/console/live``: a Server-Sent Events stream that says when the message
log changed, for the Messages page's script (``static/live.js``).

It carries no message data, only ``event: change`` with the read model's new position,
sent when the projection has applied new events (so the rows the script then fetches
include them). The stream is signed in like any page: it ends when the token is revoked
(checked at least every 5 s), when the session expires, and when the server stops.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conversa.adapters.console.state import console_state
from conversa.adapters.console.web import Operator, signed_in
from conversa.adapters.http.events import server_is_stopping
from conversa.app.service import ConversaService

POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0


@signed_in
async def stream(request: Request, operator: Operator) -> Response:
    state = console_state(request)
    service = state.service
    session = state.cookies.load(request)
    expires_at = (
        (session.signed_in_at or 0.0) + state.cookies.max_age
        if session is not None
        else time.time()
    )

    async def frames() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        position = await run_in_threadpool(_position, service)
        quiet_since = time.monotonic()
        while not server_is_stopping() and time.time() < expires_at:
            if not await state.tokens.is_active(operator.token_id):
                yield ": the token was revoked\n\n"
                return
            now = await run_in_threadpool(_position, service)
            if now != position:
                position = now
                quiet_since = time.monotonic()
                yield f"event: change\ndata: {now}\n\n"
            elif time.monotonic() - quiet_since > KEEP_ALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await anyio.sleep(POLL_SECONDS)

    return StreamingResponse(
        frames(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )


def _position(service: ConversaService) -> int:
    """How far the read model has applied the store's events."""
    return service.view.max_tracking_id(service.app.name) or 0
