"""Every error the HTTP API answers, in one JSON shape:

    {"error": {"code": "...", "message": "...", "fields": {"field": "what is wrong"}}}

Input problems raised by the domain become 422 with the offending field; a database that
cannot be reached, 503 ``database_unavailable`` with ``Retry-After``; an unexpected
failure becomes 500 carrying only a request id, which the log line carries too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from eventsourcing.persistence import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conversa.app.outage import DatabaseUnavailable
from conversa.app.service import ConversationNotFound, MessageNotFound
from conversa.domain.errors import ConversaError, InvalidRequest

log = logging.getLogger(__name__)

#: What a client is told to wait before trying again while the database is away.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "fields": dict(fields or {})}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, fields={field: message})


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, fields=exc.fields, headers=exc.headers)


async def conversa_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConversaError)
    fields = {exc.field: exc.message} if isinstance(exc, InvalidRequest) else {}
    return error_response(422, exc.code, exc.message, fields=fields)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    # The detail (host, port, libpq's words) goes to the log, not to the client.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        "database_unavailable",
        "the database is unavailable; try again shortly (a send with the same Idempotency-Key)",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def not_found(_request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", str(exc))


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


async def http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        message = "no such endpoint"
    return error_response(exc.status_code, code, message, headers=exc.headers)


EXCEPTION_HANDLERS = {
    ApiError: api_error,
    ConversaError: conversa_error,
    MessageNotFound: not_found,
    ConversationNotFound: not_found,
    HTTPException: http_exception,
    DatabaseUnavailable: database_unavailable,
    OperationalError: database_unavailable,
    InterfaceError: database_unavailable,
}
