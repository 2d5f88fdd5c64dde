"""``/conversa/webhooks/{provider}``: providers' status callbacks, verified before use.

Fail closed: without the provider's secret, or with a missing or wrong signature, the
answer is 403 and nothing changes. A body that is not the provider's format is 400, one
over 1 MiB is 413. A verified report answers 200 whether or not it changed anything, so
that the provider stops retrying it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from conversa.adapters.http.bodies import read_body
from conversa.adapters.http.errors import ApiError, error_response
from conversa.adapters.http.state import HttpState, http_state
from conversa.adapters.providers.twilio_webhook import (
    parse_form,
    parse_twilio_callback,
    public_url,
    verify_twilio_signature,
)
from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.adapters.providers.whatsapp_webhook import (
    parse_meta_webhook,
    verify_handshake,
    verify_meta_signature,
)
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 1024 * 1024
PROVIDERS = ("twilio", "whatsapp_cloud")


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _provider(request: Request) -> str:
    provider: str = request.path_params["provider"]
    if provider not in PROVIDERS:
        raise ApiError(404, "not_found", f"no webhook for provider {provider!r}")
    return provider


def _refused(state: HttpState, provider: str, status: int, reason: str, message: str) -> Response:
    state.metrics.webhook_rejected.labels(provider, reason).inc()
    log.warning("webhook %s refused (%s): %s", provider, reason, message)
    code = {403: "forbidden", 400: "malformed_webhook"}[status]
    return error_response(status, code, message)


async def webhook_handshake(request: Request) -> Response:
    provider = _provider(request)
    state = http_state(request)
    if provider != "whatsapp_cloud":
        raise ApiError(405, "method_not_allowed", f"{provider} sends its callbacks with POST")
    params = request.query_params
    try:
        challenge = verify_handshake(
            mode=params.get("hub.mode"),
            token=params.get("hub.verify_token"),
            challenge=params.get("hub.challenge"),
            verify_token=_secret(state.service.settings.whatsapp_verify_token),
        )
    except SignatureError as error:
        return _refused(state, provider, 403, "handshake", str(error))
    return PlainTextResponse(challenge)


async def webhook_callback(request: Request) -> Response:
    provider = _provider(request)
    state = http_state(request)
    settings = state.service.settings
    raw = await read_body(request, MAX_WEBHOOK_BODY)
    inbound = 0
    try:
        if provider == "twilio":
            signature = request.headers.get("x-twilio-signature")
            if not signature:
                raise SignatureError("the X-Twilio-Signature header is missing")
            if settings.webhook_base_url is None:
                raise SignatureError(
                    "CONVERSA_WEBHOOK_BASE_URL is not set, so the signed URL cannot be rebuilt"
                )
            form = parse_form(raw)
            url = public_url(
                settings.webhook_base_url,
                # What Twilio requested, byte for byte: its signature covers the URL as sent.
                request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
                request.scope.get("query_string", b"").decode("latin-1"),
            )
            verify_twilio_signature(
                auth_token=_secret(settings.twilio_token), url=url, form=form, signature=signature
            )
            report = parse_twilio_callback(form, request.query_params.get("message_id"))
            reports = [] if report is None else [report]
            fields = dict(form)
            raw_status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
            inbound = int(report is None and raw_status in ("receiving", "received"))
        else:
            verify_meta_signature(
                app_secret=_secret(settings.whatsapp_app_secret),
                raw_body=raw,
                header=request.headers.get("x-hub-signature-256"),
            )
            hook = parse_meta_webhook(raw)
            reports, inbound = hook.reports, hook.inbound_messages
    except SignatureError as error:
        return _refused(state, provider, 403, "signature", str(error))
    except MalformedWebhook as error:
        return _refused(state, provider, 400, "malformed", str(error))
    outcomes = await run_in_threadpool(_record_all, state.service, reports)
    for outcome in outcomes:
        state.metrics.webhook_reports.labels(provider, outcome.value).inc()
    if inbound:
        state.metrics.webhook_inbound.labels(provider).inc(inbound)
    return JSONResponse({"received": len(reports), "inbound_messages": inbound})


def _record_all(service: ConversaService, reports: Sequence[StatusReport]) -> list[ReportOutcome]:
    return [service.record_report(report) for report in reports]
