"""``/conversa/messages``: send, list and inspect messages."""

from __future__ import annotations

import re
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from conversa.adapters.http.bodies import read_json_object
from conversa.adapters.http.errors import ApiError, invalid
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.responses import JsonResponse
from conversa.adapters.http.state import ApplicationRequest, application_request, http_state
from conversa.app.projection import MessageQuery
from conversa.app.results import MessageState
from conversa.app.send_options import TERMS_OPTIONS
from conversa.app.service import MAX_IDEMPOTENCY_KEY, MessageNotFound
from conversa.app.tokens import TokenInfo
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.inbound import RECEIVED
from conversa.domain.phone import PhoneNumber
from conversa.domain.status import Status

MAX_SEND_BODY = 64 * 1024
SEND_FIELDS = frozenset(
    {"channel", "to", "body", "template", "from", "meta", "fallback", "reply_to", *TERMS_OPTIONS}
)
LIST_PARAMETERS = frozenset({"status", "channel", "to", "direction", "page", "per_page"})
STATUSES = (*(s.value for s in Status), RECEIVED)
DIRECTIONS = ("outbound", "inbound")
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


async def send_message(request: Request) -> JsonResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, ())
    document = await read_json_object(request, MAX_SEND_BODY)
    unknown = sorted(set(document) - SEND_FIELDS)
    if unknown:
        raise invalid(unknown[0], f"unknown field {unknown[0]}")
    key = request.headers.get("idempotency-key")
    if key is not None and not valid_idempotency_key(key):
        raise invalid(
            "Idempotency-Key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
        )
    payload = {"body": document.get("body"), "template": document.get("template")}
    opts = {
        "idempotency_key": key,
        "from": document.get("from"),
        "meta": document.get("meta"),
        "fallback": document.get("fallback"),
        "reply_to": document.get("reply_to"),
        **{name: document.get(name) for name in TERMS_OPTIONS},
    }
    check_consent_permission(context.token, [document])
    state = http_state(request)
    if prefers_async(request):
        return await _queue_message(request, context, document, payload, opts)
    result = await state.provider_pool.run(
        context.service.send,
        document.get("channel"),  # type: ignore[arg-type] # the domain refuses non-strings
        document.get("to"),  # type: ignore[arg-type]
        payload,
        opts,
        scope=str(context.token.id),
    )
    location = f"/conversa/messages/{result.message_id}"
    if result.replayed:  # counted apart, by the service
        return JsonResponse(
            result.message.as_dict(),
            status_code=200,
            headers={"Idempotent-Replayed": "true", "Location": location},
        )
    state.metrics.messages_sent.labels(result.message.channel, result.status).inc()
    return JsonResponse(result.message.as_dict(), status_code=201, headers={"Location": location})


def check_consent_permission(token: TokenInfo, documents: list[object]) -> None:
    """Only a token created with ``--allow-consent-override`` may send with ``"consent":
    "ignore"``; another is refused (403) before anything is recorded."""
    if token.allow_consent_override:
        return
    if any(isinstance(d, dict) and d.get("consent") == "ignore" for d in documents):
        raise ApiError(
            403,
            "consent_override_not_allowed",
            'this token may not send with "consent": "ignore"; create one with '
            "`conversa token create NAME --allow-consent-override` for legally required "
            "notices",
            fields={"consent": "not allowed for this token"},
        )


def path_message_id(request: Request) -> uuid.UUID:
    """The ``{message_id}`` of the path; one that is not a UUID names no message (404)."""
    raw_id = request.path_params["message_id"]
    try:
        return uuid.UUID(raw_id)
    except ValueError:
        raise MessageNotFound(raw_id) from None


def valid_idempotency_key(key: str) -> bool:
    return len(key) <= MAX_IDEMPOTENCY_KEY and _VISIBLE_ASCII.match(key) is not None


def prefers_async(request: Request) -> bool:
    """Whether the request's ``Prefer`` header (RFC 7240) asks for ``respond-async``."""
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token == "respond-async":
                return True
    return False


async def _queue_message(
    request: Request,
    context: ApplicationRequest,
    document: dict[str, object],
    payload: dict[str, object],
    opts: dict[str, object],
) -> JsonResponse:
    """``Prefer: respond-async``: 202 once the message is recorded; the dispatcher sends it."""
    result = await run_in_threadpool(
        context.service.queue,
        document.get("channel"),  # type: ignore[arg-type] # the domain refuses non-strings
        document.get("to"),  # type: ignore[arg-type]
        payload,
        opts,
        scope=str(context.token.id),
    )
    location = f"/conversa/messages/{result.message_id}"
    headers = {"Location": location, "Preference-Applied": "respond-async"}
    if result.replayed:
        return JsonResponse(
            result.message.as_dict(),
            status_code=200,
            headers={**headers, "Idempotent-Replayed": "true"},
        )
    http_state(request).metrics.messages_sent.labels(result.message.channel, result.status).inc()
    return JsonResponse(result.message.as_dict(), status_code=202, headers=headers)


async def list_messages(request: Request) -> JsonResponse:
    context = await application_request(request)
    query = parse_list_query(request)
    page = await run_in_threadpool(context.service.list_messages, query)
    return JsonResponse(
        {
            "data": [MessageState.of_row(row).as_dict() for row in page.rows],
            "meta": {"page": query.page, "per_page": query.per_page, "total": page.total},
        }
    )


async def show_message(request: Request) -> JsonResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, ())
    message_id = path_message_id(request)
    state, events = await run_in_threadpool(context.service.message_history, message_id)
    return JsonResponse({**state.as_dict(), "events": events})


def parse_list_query(request: Request) -> MessageQuery:
    refuse_unknown_parameters(request, LIST_PARAMETERS)
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise invalid("status", f"status must be one of {', '.join(STATUSES)}")
    direction = params.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise invalid("direction", f"direction must be one of {', '.join(DIRECTIONS)}")
    channel = params.get("channel")
    if channel is not None and channel not in Channel._value2member_map_:
        raise invalid("channel", f"channel must be one of {', '.join(c.value for c in Channel)}")
    to = params.get("to")
    return MessageQuery(
        status=status,
        direction=direction,
        channel=channel,
        to=None if to is None else _recipient_filter(to),
        page=_positive_int(params.get("page"), "page", default=1, maximum=1_000_000),
        per_page=_positive_int(
            params.get("per_page"), "per_page", default=DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE
        ),
    )


def _recipient_filter(raw: str, field: str = "to") -> str:
    """``to`` as E.164. An unencoded ``+`` in a query string arrives as a space, and people
    type numbers without it; both still mean an international number."""
    text = raw.strip()
    if text[:1].isdigit() and not text.startswith("00"):
        text = "+" + text
    try:
        return PhoneNumber.parse(text).e164
    except InvalidPhoneNumber as error:
        raise invalid(field, error.message.replace("to ", f"{field} ", 1)) from None


def _positive_int(raw: str | None, field: str, *, default: int, maximum: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise invalid(field, f"{field} must be a whole number from 1 to {maximum}")
    return int(raw)
