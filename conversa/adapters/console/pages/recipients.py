"""The Recipients page: a number's consent per channel and scope, with its history, and
opt-out / opt-in buttons that record source ``api`` and the operator's token name."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conversa.adapters.console.state import PREFIX
from conversa.adapters.console.web import Operator, form_of, render, service_of, signed_in
from conversa.app.consent import ConsentRequest, ConsentView
from conversa.domain.errors import InvalidRequest
from conversa.domain.recipient import CHANNELS, OPTED_IN, OPTED_OUT, SCOPES

log = logging.getLogger(__name__)

CHANGED = {
    OPTED_OUT: "Opted out: {channel}, scope {scope}, recorded as source api by {by}.",
    OPTED_IN: "Opted in: {channel}, scope {scope}, recorded as source api by {by}.",
}


@signed_in
async def recipients(request: Request, operator: Operator) -> Response:
    raw = request.query_params.get("number", "").strip()
    found: ConsentView | None = None
    error = None
    if raw:
        try:
            found = await run_in_threadpool(service_of(request).consent.show, raw)
        except InvalidRequest as refused:
            error = str(refused)
    status = request.query_params.get("changed", "")
    notice = None
    if found is not None and status in CHANGED:
        notice = CHANGED[status].format(
            channel=request.query_params.get("channel", ""),
            scope=request.query_params.get("scope", ""),
            by=operator.token_name,
        )
    return render(
        request,
        operator,
        "recipients.html",
        {
            "found": found,
            "table": found.table() if found is not None else {},
            "history": list(reversed(found.history)) if found is not None else [],
            "error": error,
            "notice": notice,
            "channels": CHANNELS,
            "scopes": SCOPES,
        },
        status_code=422 if error else 200,
    )


@signed_in
async def change(request: Request, operator: Operator) -> Response:
    form = await form_of(request)
    try:
        asked = ConsentRequest.parse(
            {
                "status": form.get("status", ""),
                "channel": form.get("channel", ""),
                "scope": form.get("scope", ""),
            }
        )
        changed = await run_in_threadpool(
            functools.partial(
                service_of(request).consent.request,
                form.get("number", ""),
                asked,
                "api",
                by=operator.token_name,
            )
        )
    except InvalidRequest:
        return RedirectResponse(
            f"{PREFIX}/recipients?" + urlencode({"number": form.get("number", "")}),
            status_code=303,
        )
    # The number is never logged: the token's name and what changed are.
    log.info(
        "console consent change token=%s status=%s channel=%s scope=%s",
        operator.token_name,
        asked.status,
        asked.channel,
        asked.scope,
    )
    query = {
        "number": changed.number,
        "changed": asked.status,
        "channel": asked.channel,
        "scope": asked.scope,
    }
    return RedirectResponse(f"{PREFIX}/recipients?{urlencode(query)}", status_code=303)


ROUTES = [
    Route("/recipients", recipients, methods=["GET"]),
    Route("/recipients/consent", change, methods=["POST"]),
]
