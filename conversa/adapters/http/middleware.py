"""A request id and an access-log line for every request, and the last line of defence
against a 500 with details."""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conversa.adapters.logs import REQUEST_ID

log = logging.getLogger("conversa.http")
access_log = logging.getLogger("conversa.access")

REQUEST_ID_HEADER = b"x-request-id"


class RequestIdMiddleware:
    """Tags each request with an id (answered as ``X-Request-Id``, and on every log line of
    the request) and logs one access line per request: method, path, status, time and id,
    and never the query string, which can hold a phone number (``?to=``). An exception
    that no handler turned into an answer is logged with the id and answers 500 with the
    id and nothing else, so that no detail of the failure leaks to the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        context = REQUEST_ID.set(request_id)
        started = False
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error request_id=%s path=%s", request_id, scope.get("path"))
            if started:
                raise
            await _answer_500(send, request_id)
        finally:
            elapsed_ms = round((time.perf_counter() - began) * 1000, 1)
            access_log.info(
                "%s %s %d %.1fms",
                scope.get("method"),
                scope.get("path"),
                status,
                elapsed_ms,
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )
            REQUEST_ID.reset(context)


async def _answer_500(send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "internal_error",
                "message": f"unexpected error; quote request id {request_id}",
                "fields": {},
                "request_id": request_id,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER, request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
