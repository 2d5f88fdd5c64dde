"""The ``whatsapp_cloud`` driver: Meta's WhatsApp Cloud API (Graph API), WhatsApp only.

One attempt is one JSON ``POST {api}/{version}/{phone-number-id}/messages`` with a bearer
token. A 200 answer carries ``messages[0].id`` (a ``wamid``); delivery comes later by webhook.
Our message id travels as ``biz_opaque_callback_data``, which Meta echoes in every status
webhook, so reports find their message directly.

Meta says to "build your app's error handling around error codes instead of subcodes or HTTP
response status codes" (throttling arrives as HTTP 400), so errors are classified on
``error.code``: transient are 130429 (throughput), 131056 (pair rate limit), 4 and 80007
(rate limits), 131000 (unknown, "try again"), 1, 2, 131016, 131057, 133004 (service down or
in maintenance), and any error flagged ``is_transient``; the rest are permanent (100, 131008,
131009 bad parameters; 131026 undeliverable; 131047 outside the 24-hour window; 132000,
132001 template problems; 190 expired token; ...). An answer without a code falls back on
the HTTP status: 408, 429 and 5xx are transient.

``DriverError.code`` is ``whatsapp_cloud_<code>`` (``whatsapp_cloud_131026``), or
``whatsapp_cloud_http_<status>`` when the answer has no code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.common import json_body, positive_int, scrub, transport_error
from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.adapters.providers.whatsapp_number import DisplayNumber
from conversa.app.ports import DriverError, DriverResult, OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body

log = logging.getLogger("conversa.driver.whatsapp_cloud")

NAME: Final = "whatsapp_cloud"
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004})
TRANSIENT_STATUSES = frozenset({408, 429})
#: Permanent refusals about our account, token or number, not the recipient: another
#: provider of a failover list may send where Meta will not (token expired, permissions,
#: account restricted, payment, registration).
ACCOUNT_CODES = frozenset({0, 3, 10, 190, 368, 130497, 131031, 131042, 131045})


@dataclass(frozen=True, slots=True)
class WhatsAppCloudConfig:
    phone_id: str | None = None
    token: SecretStr | None = None
    api_base: str = "https://graph.facebook.com"
    api_version: str = "v23.0"
    redact_response: bool = True
    #: Look up the phone number id's display number (see :class:`DisplayNumber`), so that
    #: a send says which number it went out from. Off for a driver built by hand.
    look_up_sender: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatsAppCloudConfig:
        return cls(
            phone_id=settings.whatsapp_phone_id,
            token=settings.whatsapp_token,
            api_base=settings.whatsapp_api_base,
            api_version=settings.whatsapp_api_version,
            redact_response=settings.redact_provider_response,
            look_up_sender=True,
        )


class WhatsAppCloudDriver:
    name = NAME

    def __init__(
        self, config: WhatsAppCloudConfig, client: httpx.Client, templates: TemplateCatalog
    ) -> None:
        self.config = config
        self.client = client
        self.templates = templates
        self.display_number = (
            DisplayNumber(self.phone_number_url(), config.token, client)
            if config.look_up_sender
            else None
        )

    def unavailable_reason(self, channel: Channel) -> str | None:
        if channel != Channel.WHATSAPP:
            return f"the whatsapp_cloud driver sends only whatsapp messages, not {channel}"
        token = self.config.token.get_secret_value() if self.config.token else ""
        missing = [
            variable
            for variable, value in (
                ("CONVERSA_WHATSAPP_PHONE_ID", self.config.phone_id),
                ("CONVERSA_WHATSAPP_TOKEN", token),
            )
            if not value
        ]
        if missing:
            return f"the whatsapp_cloud driver needs {' and '.join(missing)}"
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
            body = self.payload(message)
        except UnknownTemplate as error:
            return DriverResult(error=DriverError(error.code, error.message))
        assert self.config.token is not None
        token = self.config.token.get_secret_value()
        try:
            response = self.client.post(
                self.messages_url(),
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.RequestError as error:
            return self._failed(message, transport_error(NAME, error))
        payload = json_body(response)
        if response.is_success:
            wamid = _first_message_id(payload)
            if wamid is not None and isinstance(payload, dict):
                return DriverResult(
                    provider_message_id=wamid,
                    response=self.stored_response(payload),
                    # Looked up after the send, so a slow or failing lookup never holds
                    # up or fails one: only the first send of a driver waits for it.
                    sender=None if self.display_number is None else self.display_number.get(),
                )
            return self._failed(
                message,
                DriverError(
                    f"{NAME}_unexpected_response",
                    f"the Graph API answered HTTP {response.status_code} without a message id",
                ),
            )
        refusal = classify_error(response.status_code, payload)
        safe = scrub(refusal.message, recipient=message.to, secrets=[token])
        return self._failed(message, replace(refusal, message=safe))

    # The request

    def phone_number_url(self) -> str:
        phone_id = quote(self.config.phone_id or "", safe="")
        return f"{self.config.api_base}/{self.config.api_version}/{phone_id}"

    def messages_url(self) -> str:
        return f"{self.phone_number_url()}/messages"

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``message``. ``to`` is the E.164 number with its ``+``, as in
        Meta's examples (Meta echoes it as ``contacts[0].input``).

        The message's own ``from`` is not used: the sender is the phone number id in the
        path.
        """
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.e164,
        }
        content = message.content
        if isinstance(content, Body):
            body["type"] = "text"
            body["text"] = {"preview_url": False, "body": content.text}
        else:
            template = self.templates.for_driver(content.name, NAME)
            spec: dict[str, Any] = {
                "name": template.name,
                "language": {"code": template.language, "policy": "deterministic"},
            }
            if content.variables:
                spec["components"] = [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": v} for v in content.variables],
                    }
                ]
            body["type"] = "template"
            body["template"] = spec
        if message.quote:
            # A reply quotes the inbound message it answers.
            body["context"] = {"message_id": message.quote}
        body["biz_opaque_callback_data"] = str(message.message_id)
        return body

    # The answer

    def stored_response(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What is kept of a success answer (``CONVERSA_REDACT_PROVIDER_RESPONSE``)."""
        if self.config.redact_response:
            return redact_response(payload)
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


def redact_response(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A send answer without the recipient: ``contacts`` (``input`` echoes the number we
    sent, ``wa_id`` is its WhatsApp id) is dropped, and of ``messages`` only each ``id`` and
    ``message_status`` are kept. Unknown top-level fields are dropped too: they are not known
    to be free of personal data."""
    kept: dict[str, Any] = {}
    if "messaging_product" in payload:
        kept["messaging_product"] = payload["messaging_product"]
    messages = payload.get("messages")
    if isinstance(messages, list):
        kept["messages"] = [
            {k: v for k, v in item.items() if k in {"id", "message_status"}}
            for item in messages
            if isinstance(item, dict)
        ]
    return kept


def classify_error(status: int, payload: object) -> DriverError:
    """A DriverError for an error answer ``{"error": {"code", "message", ...}}``, classified
    on ``error.code`` and ``error.is_transient``. The message is Meta's, not yet scrubbed."""
    error = payload.get("error") if isinstance(payload, dict) else None
    body: dict[str, Any] = error if isinstance(error, dict) else {}
    code = positive_int(body.get("code"))
    message = body.get("message")
    text = message.strip() if isinstance(message, str) and message.strip() else ""
    data = body.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details.strip() and details not in text:
        text = f"{text}: {details.strip()}" if text else details.strip()
    if not text:
        text = f"the Graph API answered HTTP {status}"
    if code is not None:
        transient = code in TRANSIENT_CODES or body.get("is_transient") is True
    else:
        transient = status in TRANSIENT_STATUSES or status >= 500
    error_code = f"{NAME}_{code}" if code is not None else f"{NAME}_http_{status}"
    reroutable = not transient and (
        (code is not None and (code in ACCOUNT_CODES or 200 <= code <= 299))
        or (code is None and status in (401, 403))
    )
    return DriverError(error_code, text, transient=transient, reroutable=reroutable)


def _first_message_id(payload: object) -> str | None:
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str) and wamid:
            return wamid
    return None
