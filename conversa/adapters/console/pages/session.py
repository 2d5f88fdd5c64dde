"""Signing in with a console token, and out."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conversa.adapters.console.session import Session
from conversa.adapters.console.state import PREFIX, console_state
from conversa.adapters.console.web import Operator, check_form, form_of, render, signed_in
from conversa.app.tokens import TokenInfo

log = logging.getLogger(__name__)

REASONS = {
    "revoked": "Your session ended: its token was revoked.",
    "signed-out": "You are signed out.",
}


def may_use_console(token: TokenInfo) -> bool:
    """Whether the token was created with ``conversa token create NAME --console``."""
    return token.console


async def home(_request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/messages", status_code=303)


async def sign_in_form(request: Request) -> Response:
    state = console_state(request)
    session = state.cookies.load(request)
    if session is None or session.signed_in:
        session = Session.anonymous()
    reason = REASONS.get(request.query_params.get("reason", ""))
    response = _form(request, session, notice=reason)
    state.cookies.store(response, session)
    return response


async def sign_in(request: Request) -> Response:
    state = console_state(request)
    session = state.cookies.load(request)
    refusal = await check_form(request, session)
    if refusal is not None or session is None:
        return refusal or Response(status_code=403)
    secret = (await form_of(request)).get("token", "").strip()
    token = await run_in_threadpool(state.service.tokens.authenticate, secret) if secret else None
    if token is None:
        return _form(request, session, error="That token is unknown or revoked.", status=401)
    if not may_use_console(token):
        log.info("console sign-in refused token=%s: not a console token", token.name)
        return _form(
            request,
            session,
            error=(
                f"The token {token.name!r} may not sign in to the console: only a token "
                "created with `conversa token create NAME --console` can."
            ),
            status=403,
        )
    log.info("console sign-in token=%s", token.name)
    response = RedirectResponse(_next(request), status_code=303)
    state.cookies.store(response, Session.signed_in_as(token.id, token.name))
    return response


@signed_in
async def sign_out(request: Request, operator: Operator) -> Response:
    log.info("console sign-out token=%s", operator.token_name)
    state = console_state(request)
    response = RedirectResponse(f"{PREFIX}/sign-in?reason=signed-out", status_code=303)
    state.cookies.store(response, Session.anonymous())
    return response


def _next(request: Request) -> str:
    """Where to go after signing in: the page asked for, if it is a console page."""
    target = request.query_params.get("next", "")
    if target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target:
        return target
    return f"{PREFIX}/messages"


def _form(
    request: Request,
    session: Session,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        None,
        "sign_in.html",
        {"error": error, "notice": notice, "next": request.query_params.get("next", "")},
        status_code=status,
        csrf=session.csrf,
    )


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/sign-in", sign_in_form, methods=["GET"]),
    Route("/sign-in", sign_in, methods=["POST"]),
    Route("/sign-out", sign_out, methods=["POST"]),
]
