"""``GET /conversa/events``: the lifecycle events as a Server-Sent Events stream.

Each event is one frame::

    id: <event_id>
    event: <type_name>
    data: <the event's as_dict() as JSON>

The id is the event's position in the event store, so a client resumes after the last
event it saw with ``Last-Event-ID`` (what browsers send when they reconnect) or ``?after=``.
Once caught up, the stream polls for new events (unless ``?live=false``, which ends it),
and sends a comment every 15 seconds of silence so that proxies keep the connection open.
The token is checked again every few seconds: once it is revoked, the stream ends with the
comment ``: the API token was revoked``.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from functools import partial

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conversa.adapters.http.errors import invalid
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.state import application_request
from conversa.app.lifecycle import LifecycleFeed
from conversa.app.outage import DATABASE_OUTAGE
from conversa.events import EVENT_TYPES, LifecycleEvent

TYPE_NAMES: tuple[str, ...] = tuple(event_type.type_name for event_type in EVENT_TYPES)
#: Positions are 64-bit integers in both stores; a larger one cannot exist.
MAX_POSITION = 2**63 - 1
#: Events read from the store per query.
BATCH_SIZE = 100
POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
#: How often a stream checks that its token is still active. The README promises that a
#: revoked token stops working within 5 s: this, plus one batch or poll, stays inside it.
TOKEN_CHECK_SECONDS = 2.0
#: How long a client waits before reconnecting, in milliseconds (the SSE ``retry:`` field).
log = logging.getLogger(__name__)

RETRY_MILLISECONDS = 2000

RETRY_FRAME = f"retry: {RETRY_MILLISECONDS}\n\n"
KEEP_ALIVE_FRAME = ": keep-alive\n\n"
TOKEN_REVOKED_FRAME = ": the API token was revoked\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PARAMETERS = frozenset({"after", "types", "live"})


async def stream_events(request: Request) -> Response:
    context = await application_request(request)
    refuse_unknown_parameters(request, PARAMETERS)
    after = parse_position(request.query_params.get("after"), "after")
    last_event_id = parse_position(request.headers.get("last-event-id"), "Last-Event-ID")
    start = last_event_id if last_event_id is not None else after if after is not None else 0
    types = parse_types(request.query_params.getlist("types"))
    live = parse_live(request.query_params.get("live"))
    if request.method == "HEAD":  # no body would be sent: do not read, nor wait, for one
        return Response(media_type="text/event-stream", headers=HEADERS)
    token_active = partial(run_in_threadpool, context.service.tokens.is_active, context.token.id)
    frames = event_frames(
        request,
        LifecycleFeed(context.service.app),
        start,
        types,
        live,
        token_active=token_active,
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=HEADERS)


async def event_frames(
    request: Request,
    feed: LifecycleFeed,
    position: int,
    types: Collection[str] | None,
    live: bool,
    *,
    token_active: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[str]:
    """The frames of the stream: the events after ``position``, then (when ``live``) each
    new one as it is stored, until the client goes away, the server stops, or (checked
    every :data:`TOKEN_CHECK_SECONDS`) ``token_active`` answers False."""
    yield RETRY_FRAME
    last_frame = last_check = time.monotonic()
    while True:
        try:
            if token_active is not None and time.monotonic() - last_check >= TOKEN_CHECK_SECONDS:
                if not await token_active():
                    yield TOKEN_REVOKED_FRAME
                    return
                last_check = time.monotonic()
            events, read_up_to = await run_in_threadpool(feed.read, position, BATCH_SIZE)
        except DATABASE_OUTAGE as error:
            # End the stream: the client reconnects after the retry interval, with the id
            # of the last event it got, and resumes once the database is back.
            log.warning("event stream ended: the database is unavailable (%s)", error)
            return
        for event in events:
            if types is None or event.type_name in types:
                yield event_frame(event)
                last_frame = time.monotonic()
        caught_up = read_up_to == position
        # Past the events the filter left out too: resuming never reads them again.
        position = read_up_to
        if caught_up:
            if not live:
                return
            if time.monotonic() - last_frame >= KEEP_ALIVE_SECONDS:
                yield KEEP_ALIVE_FRAME
                last_frame = time.monotonic()
            await anyio.sleep(POLL_SECONDS)
        if await request.is_disconnected() or server_is_stopping():
            return


def event_frame(event: LifecycleEvent) -> str:
    """One SSE frame. JSON escapes every line break, so ``data`` is a single line."""
    data = json.dumps(event.as_dict(), separators=(",", ":"))
    return f"id: {event.event_id}\nevent: {event.type_name}\ndata: {data}\n\n"


def parse_position(raw: str | None, field: str) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_POSITION:
        raise invalid(field, f"{field} must be a whole number from 0 to {MAX_POSITION}")
    return int(text)


def parse_types(values: list[str]) -> frozenset[str] | None:
    """``types=a,b`` (or ``types=a&types=b``): the type names to keep; None keeps all."""
    if not values:
        return None
    names = {name.strip() for value in values for name in value.split(",")} - {""}
    unknown = sorted(names - set(TYPE_NAMES))
    if unknown or not names:
        problem = f"unknown event type {unknown[0]!r}" if unknown else "no event type given"
        raise invalid(
            "types", f"{problem}; types is a comma-separated list of {', '.join(TYPE_NAMES)}"
        )
    return frozenset(names)


def parse_live(raw: str | None) -> bool:
    if raw is None:
        return True
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid("live", "live must be true or false")
    return value in ("true", "1")


def server_is_stopping() -> bool:
    """Whether the server has been told to stop (SIGTERM, or SIGINT).

    uvicorn waits for the responses in flight before it shuts the application down, and
    tells them nothing: a live stream would hold the shutdown until uvicorn's graceful
    timeout and then be cancelled. Its signal handler is its ``Server``'s bound
    ``handle_exit``, which sets ``should_exit``; reading that flag ends the stream at its
    next poll instead. Under another server (or outside the main thread) this is False,
    and the stream ends when its client goes away.
    """
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return getattr(server, "should_exit", False) is True
