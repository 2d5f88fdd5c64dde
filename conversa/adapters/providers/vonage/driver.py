"""The ``vonage`` driver: Vonage's SMS API (``shared/specs/vonage_sms_v1.0.10.yml``), SMS only.

One attempt is one form-encoded ``POST {api}/sms/json`` carrying ``api_key`` and
``api_secret``, ``from``, ``to`` (E.164 without the '+'), ``text`` and ``type`` (``unicode``
when the text is not all GSM-7), ``client-ref`` (our message id, echoed in every delivery
receipt) and, when ``CONVERSA_WEBHOOK_BASE_URL`` is set, ``callback``
(``{base}/conversa/webhooks/vonage?message_id=<id>``).

The answer is HTTP 200 whatever happened: ``{"message-count": "2", "messages": [...]}``, one
entry per SMS part, each with its own ``message-id`` and a ``status`` where ``"0"`` means
accepted. Any other status is an error (see :mod:`.errors`): ``vonage_<status>``, transient
for 1, 5 and 10, unless some part was accepted already, since a retry would send those parts
again. A long text is several parts: the first part's id is the provider id, and all of them
are in :attr:`DriverResult.parts`, so the message is delivered once each part is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.common import (
    json_body,
    positive_int,
    scrub,
    sent_from,
    transport_error,
)
from conversa.adapters.providers.vonage.errors import (
    ACCOUNT_STATUSES,
    TRANSIENT_STATUSES,
    send_error_text,
)
from conversa.app.ports import DriverError, DriverResult, OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.errors import InvalidContent

log = logging.getLogger("conversa.driver.vonage")

NAME: Final = "vonage"
SEND_PATH: Final = "/sms/json"

#: What a stored part keeps: no ``to``, no balance (account data), nothing added later.
SAFE_PART_FIELDS: Final = frozenset(
    {"message-id", "status", "message-price", "network", "client-ref", "error-text"}
)

# GSM 03.38: the basic character set and its extension table. A text outside them must go
# as ``type=unicode`` or the handset shows question marks.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
GSM_CHARACTERS: Final = frozenset(_GSM_BASIC + _GSM_EXTENDED)


@dataclass(frozen=True, slots=True)
class VonageConfig:
    api_key: str | None = None
    api_secret: SecretStr | None = None
    sms_from: str | None = None
    api_base: str = "https://rest.nexmo.com"
    webhook_base_url: str | None = None
    redact_response: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> VonageConfig:
        return cls(
            api_key=settings.vonage_api_key,
            api_secret=settings.vonage_api_secret,
            sms_from=settings.vonage_sms_from,
            api_base=settings.vonage_api_base,
            webhook_base_url=settings.webhook_base_url,
            redact_response=settings.redact_provider_response,
        )


class VonageDriver:
    name = NAME

    def __init__(self, config: VonageConfig, client: httpx.Client) -> None:
        self.config = config
        self.client = client

    def unavailable_reason(self, channel: Channel) -> str | None:
        if channel != Channel.SMS:
            return f"the vonage driver sends SMS only, not {channel} messages"
        config = self.config
        secret = config.api_secret.get_secret_value() if config.api_secret else None
        required = [
            ("CONVERSA_VONAGE_API_KEY", config.api_key),
            ("CONVERSA_VONAGE_API_SECRET", secret),
            ("CONVERSA_VONAGE_SMS_FROM", config.sms_from),
        ]
        missing = [variable for variable, value in required if not value]
        if missing:
            return f"the vonage driver needs {' and '.join(missing)} to send sms messages"
        return None

    def validate(self, message: OutboundMessage) -> None:
        if not isinstance(message.content, Body):
            raise InvalidContent("template", "the vonage driver sends text bodies, not templates")

    def send(self, message: OutboundMessage) -> DriverResult:
        reason = self.unavailable_reason(message.channel)
        if reason is not None:
            return DriverResult(error=DriverError("driver_unavailable", reason))
        if not isinstance(message.content, Body):
            return DriverResult(
                error=DriverError("invalid_content", "the vonage driver sends text bodies only")
            )
        assert self.config.api_secret is not None
        secret = self.config.api_secret.get_secret_value()
        try:
            response = self.client.post(
                self.config.api_base.rstrip("/") + SEND_PATH,
                data=self.form(message),
                headers={"Accept": "application/json"},
            )
        except httpx.RequestError as failure:
            return self._failed(message, transport_error(NAME, failure))
        payload = json_body(response)
        if not response.is_success:
            transient = response.status_code in (408, 429) or response.status_code >= 500
            return self._failed(
                message,
                DriverError(
                    f"{NAME}_http_{response.status_code}",
                    f"Vonage answered HTTP {response.status_code}",
                    transient=transient,
                    # 401/403: our credentials; another provider is not affected.
                    reroutable=response.status_code in (401, 403),
                ),
            )
        result = parse_answer(payload, redact=self.config.redact_response)
        if result.error is not None:
            safe = scrub(result.error.message, recipient=message.to, secrets=[secret])
            error = DriverError(
                result.error.code,
                safe,
                transient=result.error.transient,
                reroutable=result.error.reroutable,
            )
            return self._failed(message, error)
        # The sender it went out from (the answer does not repeat it).
        return replace(result, sender=sent_from(message.sender or self.config.sms_from))

    def form(self, message: OutboundMessage) -> dict[str, str]:
        assert isinstance(message.content, Body)
        text = message.content.text
        form = {
            "api_key": self.config.api_key or "",
            "api_secret": self.config.api_secret.get_secret_value()
            if self.config.api_secret
            else "",
            "from": message.sender or self.config.sms_from or "",
            "to": message.to.e164.removeprefix("+"),
            "text": text,
            "type": "text" if is_gsm(text) else "unicode",
            "client-ref": str(message.message_id),
        }
        if self.config.webhook_base_url:
            form["callback"] = callback_url(self.config.webhook_base_url, str(message.message_id))
        return form

    def _failed(self, message: OutboundMessage, error: DriverError) -> DriverResult:
        log.warning(
            "send failed message_id=%s code=%s transient=%s: %s",
            message.message_id,
            error.code,
            error.transient,
            error.message,
        )
        return DriverResult(error=error)


def is_gsm(text: str) -> bool:
    return all(char in GSM_CHARACTERS for char in text)


def callback_url(webhook_base_url: str, message_id: str) -> str:
    return f"{webhook_base_url.rstrip('/')}/conversa/webhooks/vonage?message_id={message_id}"


def parse_answer(payload: object, *, redact: bool = True) -> DriverResult:
    """The outcome of an HTTP 200 answer of the SMS API (not yet scrubbed)."""
    parts = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
        return DriverResult(
            error=DriverError(
                f"{NAME}_unexpected_response", "Vonage answered without a messages list"
            )
        )
    accepted = [p for p in parts if str(p.get("status")) == "0"]
    refused = [p for p in parts if str(p.get("status")) != "0"]
    if refused:
        return DriverResult(error=_part_error(refused[0], some_accepted=bool(accepted)))
    ids = [p.get("message-id") for p in parts]
    if not all(isinstance(i, str) and i for i in ids):
        return DriverResult(
            error=DriverError(
                f"{NAME}_unexpected_response", "Vonage accepted the message without a message-id"
            )
        )
    assert isinstance(payload, dict)
    part_ids = tuple(str(i) for i in ids)
    return DriverResult(
        provider_message_id=part_ids[0],
        response=stored_response(payload, redact=redact),
        parts=part_ids,
    )


def _part_error(part: Mapping[str, Any], *, some_accepted: bool) -> DriverError:
    status = positive_int(part.get("status"))
    text = part.get("error-text")
    if not isinstance(text, str) or not text.strip():
        text = send_error_text(status) if status is not None else "Vonage refused the message"
    if some_accepted:
        text += " (some parts were accepted, so the message is not tried again)"
    code = f"{NAME}_{status}" if status is not None else f"{NAME}_unexpected_response"
    transient = status in TRANSIENT_STATUSES and not some_accepted
    reroutable = status in ACCOUNT_STATUSES
    return DriverError(code, text, transient=transient, reroutable=reroutable)


def stored_response(payload: Mapping[str, Any], *, redact: bool) -> dict[str, Any]:
    """What is kept of the answer: with redaction, the part count and each part's id,
    status, price and network (no recipient, no account balance)."""
    if not redact:
        return dict(payload)
    parts = payload.get("messages")
    kept: dict[str, Any] = {"message-count": payload.get("message-count")}
    if isinstance(parts, list):
        kept["messages"] = [
            {k: v for k, v in part.items() if k in SAFE_PART_FIELDS}
            for part in parts
            if isinstance(part, dict)
        ]
    return kept
