"""What a console page module uses: sign-in and CSRF checks, forms, rendering.

A page is an ``async def handler(request, operator) -> Response`` wrapped in
:func:`signed_in`, listed in its module's ``ROUTES`` with a path relative to the console's
prefix (see :mod:`conversa.adapters.console.pages`)::

    @signed_in
    async def overview(request: Request, operator: Operator) -> Response:
        facts = await run_in_threadpool(service_of(request).something)
        return render(request, operator, "overview.html", {"facts": facts})

    ROUTES = [Route("/overview", overview, methods=["GET"])]

A form posts with ``{{ csrf_field() }}`` inside it (the macro of ``base.html``'s context);
:func:`signed_in` refuses any POST without the session's token (403) before the handler
runs, and :func:`form_of` gives the handler the posted fields.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from uuid import UUID

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from conversa.adapters.console.session import Session
from conversa.adapters.console.state import PREFIX, console_state
from conversa.app.service import ConversaService

#: The largest form body the console reads.
MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Operator:
    """The signed-in operator: the console token's id and name, and the session's CSRF token."""

    token_id: UUID
    token_name: str
    csrf: str


Handler = Callable[[Request, Operator], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def signed_in(handler: Handler) -> Endpoint:
    """Run ``handler`` for a signed-in operator whose token is still active.

    Any method but GET and HEAD must come from this site with the session's CSRF token:
    otherwise 403, whether signed in or not. A GET without a session (or whose token was
    revoked, or whose session expired) is redirected to the sign-in page.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        state = console_state(request)
        session = state.cookies.load(request)
        if request.method not in SAFE_METHODS:
            refusal = await check_form(request, session)
            if refusal is not None:
                return refusal
        if session is None or session.token_id is None or session.token_name is None:
            return to_sign_in(request)
        if not await state.tokens.is_active(session.token_id):
            response = to_sign_in(request, reason="revoked")
            state.cookies.clear(response)
            return response
        operator = Operator(session.token_id, session.token_name, session.csrf)
        return await handler(request, operator)

    return endpoint


async def check_form(request: Request, session: Session | None) -> Response | None:
    """None when the post is this site's form with the session's CSRF token, else the 403."""
    if _cross_site(request):
        return refused("the form was posted from another site")
    form = await form_of(request)
    sent = form.get(CSRF_FIELD, "")
    if session is None or not sent or not hmac.compare_digest(sent, session.csrf):
        return refused("the form's security token is missing or stale; reload the page")
    return None


def _cross_site(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


async def form_of(request: Request) -> dict[str, str]:
    """The posted form's fields (the last value of each); an empty dict for anything but a
    URL-encoded form of at most :data:`MAX_FORM_BYTES`."""
    cached: dict[str, str] | None = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    form: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                body = b""
                break
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {name: values[-1] for name, values in fields.items()}
    request.state.console_form = form
    return form


def refused(reason: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>Refused</title><h1>403 Refused</h1><p>{escape(reason)}</p>",
        status_code=403,
    )


def to_sign_in(request: Request, *, reason: str | None = None) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    url = f"{PREFIX}/sign-in?next={quote(target, safe='')}"
    if reason:
        url += f"&reason={reason}"
    return RedirectResponse(url, status_code=303)


def service_of(request: Request) -> ConversaService:
    return console_state(request).service


def render(
    request: Request,
    operator: Operator | None,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    csrf: str | None = None,
) -> HTMLResponse:
    """The template rendered with the page's context plus ``operator``, ``csrf_field()``
    and ``path`` (for the navigation)."""
    token = operator.csrf if operator is not None else (csrf or "")

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    html = (
        console_state(request)
        .templates.get_template(template)
        .render(
            {
                **(context or {}),
                "operator": operator,
                "csrf_field": csrf_field,
                "path": request.url.path,
            }
        )
    )
    return HTMLResponse(html, status_code=status_code)


def path_uuid(request: Request, name: str) -> UUID | None:
    """The path parameter ``name`` as a UUID; None when it is not one (the page answers
    404, as for an id that names nothing)."""
    try:
        return UUID(request.path_params[name])
    except ValueError:
        return None
