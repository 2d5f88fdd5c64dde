"""``/conversa/recipients/{number}``: a number's consent per channel and its history, and
changing it (source ``api``, recorded with the token's name)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from conversa.adapters.http.bodies import read_json_object
from conversa.adapters.http.query import refuse_unknown_parameters
from conversa.adapters.http.state import application_request
from conversa.app.consent import ConsentRequest

#: A consent change is a few short fields.
MAX_CONSENT_BODY = 4096


async def show_recipient(request: Request) -> JSONResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, frozenset())
    found = await run_in_threadpool(context.service.consent.show, request.path_params["number"])
    return JSONResponse(found.as_dict())


async def change_consent(request: Request) -> JSONResponse:
    context = await application_request(request)
    refuse_unknown_parameters(request, frozenset())
    document = await read_json_object(request, MAX_CONSENT_BODY)
    change = ConsentRequest.parse(document)
    changed = await run_in_threadpool(
        context.service.consent.request,
        request.path_params["number"],
        change,
        "api",
        by=context.token.name,
    )
    return JSONResponse(changed.as_dict())
