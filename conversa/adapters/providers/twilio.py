"""The ``twilio`` driver: Twilio Programmable Messaging, for SMS and for WhatsApp.

One attempt is one form-encoded ``POST {api}/2010-04-01/Accounts/{sid}/Messages.json`` with
HTTP Basic auth (account SID, auth token). A 201 answer carries the message ``sid``; an error
answer carries Twilio's numeric ``code``, which decides whether a retry may help:

- transient: 20429 / HTTP 429 (throttled: "never processed and always safe to retry"),
  20500 / 20503 and other 5xx, timeouts and connection failures;
- permanent: everything else, e.g. 21211 invalid ``To``, 21408 region not enabled, 21610
  recipient unsubscribed, 21614 not a mobile number, 21606 bad ``From``, 20003 bad
  credentials, 20404 wrong account.

``DriverError.code`` is ``twilio_<code>`` (``twilio_21211``), or ``twilio_http_<status>``
when the answer has no code; see :mod:`conversa.adapters.providers.common` for the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.common import (
    json_body,
    positive_int,
    scrub,
    sent_from,
    transport_error,
)
from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.app.ports import DriverError, DriverResult, OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body

log = logging.getLogger("conversa.driver.twilio")

NAME: Final = "twilio"
WHATSAPP_PREFIX = "whatsapp:"
#: Twilio codes worth retrying: throttled, internal error, service unavailable.
TRANSIENT_CODES = frozenset({20429, 20500, 20503})
#: Codes that mean "this request will never succeed", whatever HTTP status carried them.
PERMANENT_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # resource not found (wrong account SID)
        21211,  # invalid To
        21408,  # SMS not enabled for the To region (geo permissions)
        21602,  # body required
        21603,  # From required
        21604,  # To required
        21606,  # From is not a message-capable Twilio number
        21608,  # unverified number on a trial account
        21610,  # recipient replied STOP
        21612,  # To not reachable via SMS
        21614,  # To is not a mobile number
        21617,  # body longer than 1600 characters
        21635,  # To is a landline
    }
)
#: Permanent refusals about our account or route, not the recipient: another provider of a
#: failover list may send where Twilio will not.
ROUTE_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # wrong account
        21408,  # region not enabled
        21606,  # From is not ours to send from
        21608,  # trial account
        21612,  # cannot route to this number by SMS
    }
)
#: HTTP statuses that mean "try again later" when the answer has no code we know.
TRANSIENT_STATUSES = frozenset({408, 429})
_MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")

#: What a redacted response keeps: identifiers, status, counts, price and dates. Everything
#: else goes, first of all ``to``, ``from`` and ``body``, but also ``error_message`` (which
#: can quote the number) and any field Twilio adds later, since it is not known to be safe.
SAFE_RESPONSE_FIELDS = frozenset(
    {
        "sid",
        "status",
        "account_sid",
        "messaging_service_sid",
        "api_version",
        "direction",
        "num_segments",
        "num_media",
        "error_code",
        "price",
        "price_unit",
        "date_created",
        "date_sent",
        "date_updated",
        "uri",
        "subresource_uris",
    }
)


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    sms_from: str | None = None
    whatsapp_from: str | None = None
    api_base: str = "https://api.twilio.com"
    webhook_base_url: str | None = None
    redact_response: bool = True
    store_body: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioConfig:
        return cls(
            account_sid=settings.twilio_sid,
            auth_token=settings.twilio_token,
            sms_from=settings.twilio_sms_from,
            whatsapp_from=settings.twilio_whatsapp_from,
            api_base=settings.twilio_api_base,
            webhook_base_url=settings.webhook_base_url,
            redact_response=settings.redact_provider_response,
            store_body=settings.store_body,
        )


class TwilioDriver:
    name = NAME

    def __init__(
        self, config: TwilioConfig, client: httpx.Client, templates: TemplateCatalog
    ) -> None:
        self.config = config
        self.client = client
        self.templates = templates

    def unavailable_reason(self, channel: Channel) -> str | None:
        config = self.config
        sender = (
            ("CONVERSA_TWILIO_SMS_FROM", config.sms_from)
            if channel == Channel.SMS
            else ("CONVERSA_TWILIO_WHATSAPP_FROM", config.whatsapp_from)
        )
        token = config.auth_token.get_secret_value() if config.auth_token else None
        required = [
            ("CONVERSA_TWILIO_SID", config.account_sid),
            ("CONVERSA_TWILIO_TOKEN", token),
            sender,
        ]
        missing = [variable for variable, value in required if not value]
        if missing:
            return f"the twilio driver needs {' and '.join(missing)} to send {channel} messages"
        return None

    def validate(self, message: OutboundMessage) -> None:
        """Raise :class:`UnknownTemplate` when the message names a template this driver
        cannot send; the service may call it before recording the message."""
        content = message.content
        if not isinstance(content, Body):
            self.templates.for_driver(content.name, NAME)

    def send(self, message: OutboundMessage) -> DriverResult:
        reason = self.unavailable_reason(message.channel)
        if reason is not None:
            return DriverResult(error=DriverError("driver_unavailable", reason))
        try:
            form = self.form(message)
        except UnknownTemplate as error:
            return DriverResult(error=DriverError(error.code, error.message))
        assert self.config.account_sid is not None and self.config.auth_token is not None
        token = self.config.auth_token.get_secret_value()
        try:
            response = self.client.post(
                self.messages_url(),
                data=form,
                auth=(self.config.account_sid, token),
                headers={"Accept": "application/json"},
            )
        except httpx.RequestError as error:
            return self._failed(message, transport_error(NAME, error))
        payload = json_body(response)
        if response.is_success:
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if isinstance(payload, dict) and isinstance(sid, str) and sid:
                return DriverResult(
                    provider_message_id=sid,
                    response=self.stored_response(payload),
                    sender=self.sender_used(form, payload),
                )
            return self._failed(
                message,
                DriverError(
                    f"{NAME}_unexpected_response",
                    f"Twilio answered HTTP {response.status_code} without a message sid",
                ),
            )
        refusal = classify_error(response.status_code, payload)
        safe = scrub(refusal.message, recipient=message.to, secrets=[token])
        return self._failed(message, replace(refusal, message=safe))

    # The request

    def messages_url(self) -> str:
        sid = quote(self.config.account_sid or "", safe="")
        return f"{self.config.api_base}/2010-04-01/Accounts/{sid}/Messages.json"

    def form(self, message: OutboundMessage) -> dict[str, str]:
        """The Create Message form fields for ``message``.

        The sender is the message's own ``from`` when given, else the channel's configured
        one; a Messaging Service SID (``MG...``) goes in ``MessagingServiceSid`` instead of
        ``From``. WhatsApp addresses carry the ``whatsapp:`` prefix. A template is sent as
        ``ContentSid`` (+ ``ContentVariables``) and never with ``Body``: Twilio rejects a
        template text sent as a body outside the 24-hour window (63016).
        """
        whatsapp = message.channel == Channel.WHATSAPP
        configured = self.config.whatsapp_from if whatsapp else self.config.sms_from
        sender = message.sender or configured or ""
        form: dict[str, str] = {"To": _address(message.to.e164, whatsapp=whatsapp)}
        if _MESSAGING_SERVICE.match(sender):
            form["MessagingServiceSid"] = sender
        else:
            form["From"] = _address(sender, whatsapp=whatsapp)
        content = message.content
        if isinstance(content, Body):
            form["Body"] = content.text
        else:
            template = self.templates.for_driver(content.name, NAME)
            form["ContentSid"] = template.content_sid
            if content.variables:
                form["ContentVariables"] = json.dumps(
                    {str(i): value for i, value in enumerate(content.variables, start=1)},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
        if self.config.webhook_base_url:
            form["StatusCallback"] = status_callback_url(
                self.config.webhook_base_url, str(message.message_id)
            )
        return form

    # The answer

    @staticmethod
    def sender_used(form: Mapping[str, str], payload: Mapping[str, Any]) -> str | None:
        """The number the message went out from: the answer's ``from`` (the one Twilio
        picked, for a Messaging Service), else the ``From`` we sent; None when a
        Messaging Service has not picked one yet."""
        answered = payload.get("from")
        if isinstance(answered, str) and answered.strip():
            return sent_from(answered)
        return sent_from(form.get("From"))

    def stored_response(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What is kept of a success answer (``CONVERSA_REDACT_PROVIDER_RESPONSE``)."""
        if self.config.redact_response:
            return redact_response(payload)
        if not self.config.store_body:  # CONVERSA_STORE_BODY=false: the text is kept nowhere
            return {k: v for k, v in payload.items() if k != "body"}
        return dict(payload)

    def _failed(self, message: OutboundMessage, error: DriverError) -> DriverResult:
        log.warning(
            "send failed message_id=%s code=%s transient=%s: %s",
            message.message_id,
            error.code,
            error.transient,
            error.message,
        )
        return DriverResult(error=error)


def status_callback_url(webhook_base_url: str, message_id: str) -> str:
    return f"{webhook_base_url.rstrip('/')}/conversa/webhooks/twilio?message_id={message_id}"


def redact_response(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Create Message answer without recipient, sender or body: only the fields in
    :data:`SAFE_RESPONSE_FIELDS` are kept."""
    return {k: v for k, v in payload.items() if k in SAFE_RESPONSE_FIELDS}


def classify_error(status: int, payload: object) -> DriverError:
    """A DriverError for an error answer, from Twilio's ``code`` when there is one.

    Handles the classic body ``{code, message, more_info, status}``, the RFC 9457 shape
    ``{type, title, status, code, detail, instance}``, and bodies that are not JSON at all
    (then the HTTP status decides). The message is Twilio's, not yet scrubbed.
    """
    body = payload if isinstance(payload, dict) else {}
    code = positive_int(body.get("code"))
    text = next(
        (
            value
            for key in ("message", "detail", "title")
            if isinstance(value := body.get(key), str) and value.strip()
        ),
        f"Twilio answered HTTP {status}",
    )
    if code in TRANSIENT_CODES:
        transient = True
    elif code in PERMANENT_CODES:
        transient = False
    else:
        transient = status in TRANSIENT_STATUSES or status >= 500
    error_code = f"{NAME}_{code}" if code is not None else f"{NAME}_http_{status}"
    reroutable = not transient and (code in ROUTE_CODES or (code is None and status in (401, 403)))
    return DriverError(error_code, text, transient=transient, reroutable=reroutable)


def _address(value: str, *, whatsapp: bool) -> str:
    if whatsapp and not value.startswith(WHATSAPP_PREFIX):
        return WHATSAPP_PREFIX + value
    return value
