"""``/conversa/webhooks/{provider}``: providers' status callbacks and inbound messages,
verified before use.

Fail closed: without the provider's secret, or with a missing or wrong signature, the
answer is 403 and nothing changes. A body that is not the provider's format is 400, one
over 1 MiB is 413. A verified report answers 200 whether or not it changed anything, so
that the provider stops retrying it; so does an inbound message, recorded once however
often the provider sends it (a Twilio one is answered with empty TwiML).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from conversa.adapters.http.bodies import read_body
from conversa.adapters.http.errors import ApiError, error_response
from conversa.adapters.http.responses import JsonResponse
from conversa.adapters.http.state import HttpState, http_state
from conversa.adapters.providers.africastalking.webhook import (
    json_form,
    parse_delivery_report,
    verify_url_token,
)
from conversa.adapters.providers.twilio_inbound import (
    EMPTY_TWIML,
    is_incoming,
    parse_twilio_incoming,
)
from conversa.adapters.providers.twilio_webhook import (
    parse_form,
    parse_twilio_callback,
    public_url,
    verify_twilio_signature,
)
from conversa.adapters.providers.vonage.webhook import (
    parse_vonage_webhook,
    verify_vonage_signature,
    webhook_params,
)
from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.adapters.providers.whatsapp_preferences import parse_user_preferences
from conversa.adapters.providers.whatsapp_webhook import (
    parse_meta_webhook,
    verify_handshake,
    verify_meta_signature,
)
from conversa.app.consent import ConsentSignal
from conversa.app.inbound import InboundReport
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.service import ConversaService
from conversa.app.settings import Settings

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY = 1024 * 1024
PROVIDERS = ("twilio", "whatsapp_cloud", "vonage", "africastalking")


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
    if provider == "vonage":
        return await webhook_callback(request)  # Vonage may send its webhooks with GET
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


@dataclass(frozen=True, slots=True)
class Reading:
    """What a provider's webhook request says once verified: status reports, and the
    inbound messages it carried (``inbound``: how many, recorded or not)."""

    reports: list[StatusReport] = field(default_factory=list)
    inbound: int = 0
    messages: list[InboundReport] = field(default_factory=list)
    #: Answer with empty TwiML (a Twilio incoming message) rather than JSON.
    twiml: bool = False
    #: Consent changes the provider reports (Meta's user_preferences).
    consent: list[ConsentSignal] = field(default_factory=list)


def _read_twilio(request: Request, settings: Settings, raw: bytes) -> Reading:
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
    # A status callback and an incoming message may come to the same URL.
    if is_incoming(form):
        return Reading(inbound=1, messages=[parse_twilio_incoming(form)], twiml=True)
    report = parse_twilio_callback(form, request.query_params.get("message_id"))
    return Reading(reports=[] if report is None else [report])


def _read_meta(request: Request, settings: Settings, raw: bytes) -> Reading:
    verify_meta_signature(
        app_secret=_secret(settings.whatsapp_app_secret),
        raw_body=raw,
        header=request.headers.get("x-hub-signature-256"),
    )
    hook = parse_meta_webhook(raw)
    return Reading(
        list(hook.reports),
        hook.inbound_messages,
        list(hook.inbound),
        consent=parse_user_preferences(raw),
    )


def _read_vonage(request: Request, settings: Settings, raw: bytes) -> Reading:
    query = list(request.query_params.multi_items())
    params = webhook_params(request.method, request.headers.get("content-type", ""), raw, query)
    verify_vonage_signature(
        params,
        secret=_secret(settings.vonage_signature_secret),
        method=settings.vonage_signature_method,
        now=time.time(),
        query=dict(query) if request.method == "GET" else None,
    )
    hook = parse_vonage_webhook(params, request.query_params.get("message_id"))
    return Reading(
        [] if hook.report is None else [hook.report],
        int(hook.inbound),
        [] if hook.message is None else [hook.message],
    )


def _read_africastalking(request: Request, settings: Settings, raw: bytes) -> Reading:
    verify_url_token(
        expected=_secret(settings.africastalking_webhook_token),
        received=request.query_params.get("token"),
    )
    hook = parse_delivery_report(
        parse_form(raw) if "json" not in request.headers.get("content-type", "") else json_form(raw)
    )
    return Reading([] if hook.report is None else [hook.report], int(hook.inbound))


READERS: dict[str, Callable[[Request, Settings, bytes], Reading]] = {
    "twilio": _read_twilio,
    "whatsapp_cloud": _read_meta,
    "vonage": _read_vonage,
    "africastalking": _read_africastalking,
}


async def webhook_callback(request: Request) -> Response:
    provider = _provider(request)
    state = http_state(request)
    settings = state.service.settings
    raw = await read_body(request, MAX_WEBHOOK_BODY)
    try:
        reading = READERS[provider](request, settings, raw)
    except SignatureError as error:
        return _refused(state, provider, 403, "signature", str(error))
    except MalformedWebhook as error:
        return _refused(state, provider, 400, "malformed", str(error))
    outcomes, recorded = await run_in_threadpool(_record_all, state.service, reading)
    for outcome in outcomes:
        state.metrics.webhook_reports.labels(provider, outcome.value).inc()
    if reading.inbound:
        state.metrics.webhook_inbound.labels(provider).inc(reading.inbound)
    if reading.twiml:
        return Response(EMPTY_TWIML, media_type="text/xml")
    return JsonResponse(
        {
            "received": len(reading.reports),
            "inbound_messages": reading.inbound,
            "inbound_recorded": recorded,
        }
    )


def _record_all(service: ConversaService, reading: Reading) -> tuple[list[ReportOutcome], int]:
    """Apply the reports and record the inbound messages (a retry's: nothing new);
    return the reports' outcomes and how many inbound messages were new."""
    outcomes = [service.record_report(report) for report in reading.reports]
    recorded = sum(service.record_inbound(message) for message in reading.messages)
    for signal in reading.consent:
        service.consent.record_signal(signal)
    return outcomes, recorded
