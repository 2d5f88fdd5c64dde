"""The ``africastalking`` driver: Africa's Talking's bulk SMS API, SMS only.

One attempt is one form-encoded ``POST {api}/version1/messaging`` with the ``apiKey`` header
and the fields ``username``, ``to`` (E.164), ``message`` and ``from`` (when a sender is
configured). The answer (HTTP 201) holds one recipient entry::

    {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
                        "Recipients": [{"statusCode": 101, "number": "+254711000000",
                                        "status": "Success", "cost": "KES 0.8000",
                                        "messageId": "ATXid_..."}]}}

whose ``statusCode`` decides (see :mod:`.errors`): ``africastalking_<statusCode>`` when it
is not accepted. With the username ``sandbox`` and no API base of its own, the sandbox's
base URL is used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.africastalking.errors import (
    ACCEPTED_CODES,
    ACCOUNT_CODES,
    STATUS_CODES,
    TRANSIENT_CODES,
)
from conversa.adapters.providers.common import (
    json_body,
    positive_int,
    scrub,
    sent_from,
    transport_error,
)
from conversa.app.ports import DriverError, DriverResult, OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.errors import InvalidContent

log = logging.getLogger("conversa.driver.africastalking")

NAME: Final = "africastalking"
SEND_PATH: Final = "/version1/messaging"
LIVE_API_BASE: Final = "https://api.africastalking.com"
SANDBOX_API_BASE: Final = "https://api.sandbox.africastalking.com"
SANDBOX_USERNAME: Final = "sandbox"
#: What a stored recipient entry keeps: no number.
SAFE_RECIPIENT_FIELDS: Final = frozenset({"statusCode", "status", "cost", "messageId"})


@dataclass(frozen=True, slots=True)
class AfricasTalkingConfig:
    username: str | None = None
    api_key: SecretStr | None = None
    sender: str | None = None
    api_base: str = LIVE_API_BASE
    redact_response: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> AfricasTalkingConfig:
        return cls(
            username=settings.africastalking_username,
            api_key=settings.africastalking_api_key,
            sender=settings.africastalking_from,
            api_base=settings.africastalking_api_base,
            redact_response=settings.redact_provider_response,
        )

    @property
    def base_url(self) -> str:
        if self.username == SANDBOX_USERNAME and self.api_base == LIVE_API_BASE:
            return SANDBOX_API_BASE
        return self.api_base.rstrip("/")


class AfricasTalkingDriver:
    name = NAME

    def __init__(self, config: AfricasTalkingConfig, client: httpx.Client) -> None:
        self.config = config
        self.client = client

    def unavailable_reason(self, channel: Channel) -> str | None:
        if channel != Channel.SMS:
            return f"the africastalking driver sends SMS only, not {channel} messages"
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        required = [
            ("CONVERSA_AFRICASTALKING_USERNAME", self.config.username),
            ("CONVERSA_AFRICASTALKING_API_KEY", key),
        ]
        missing = [variable for variable, value in required if not value]
        if missing:
            return f"the africastalking driver needs {' and '.join(missing)} to send sms messages"
        return None

    def validate(self, message: OutboundMessage) -> None:
        if not isinstance(message.content, Body):
            raise InvalidContent(
                "template", "the africastalking driver sends text bodies, not templates"
            )

    def send(self, message: OutboundMessage) -> DriverResult:
        reason = self.unavailable_reason(message.channel)
        if reason is not None:
            return DriverResult(error=DriverError("driver_unavailable", reason))
        if not isinstance(message.content, Body):
            return DriverResult(
                error=DriverError(
                    "invalid_content", "the africastalking driver sends text bodies only"
                )
            )
        assert self.config.api_key is not None
        key = self.config.api_key.get_secret_value()
        try:
            response = self.client.post(
                self.config.base_url + SEND_PATH,
                data=self.form(message),
                headers={"apiKey": key, "Accept": "application/json"},
            )
        except httpx.RequestError as failure:
            return self._failed(message, transport_error(NAME, failure))
        payload = json_body(response)
        if not response.is_success:
            status = response.status_code
            return self._failed(
                message,
                DriverError(
                    f"{NAME}_http_{status}",
                    f"Africa's Talking answered HTTP {status}",
                    transient=status in (408, 429) or status >= 500,
                    reroutable=status in (401, 403),
                ),
            )
        result = parse_answer(payload, redact=self.config.redact_response)
        if result.error is not None:
            error = result.error
            safe = scrub(error.message, recipient=message.to, secrets=[key])
            return self._failed(
                message,
                DriverError(
                    error.code, safe, transient=error.transient, reroutable=error.reroutable
                ),
            )
        # The sender it went out from (the answer does not repeat it).
        return replace(result, sender=sent_from(message.sender or self.config.sender))

    def form(self, message: OutboundMessage) -> dict[str, str]:
        assert isinstance(message.content, Body)
        form = {
            "username": self.config.username or "",
            "to": message.to.e164,
            "message": message.content.text,
        }
        sender = message.sender or self.config.sender
        if sender:
            form["from"] = sender
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


def parse_answer(payload: object, *, redact: bool = True) -> DriverResult:
    """The outcome of a success answer (not yet scrubbed)."""
    data = payload.get("SMSMessageData") if isinstance(payload, dict) else None
    recipients = data.get("Recipients") if isinstance(data, dict) else None
    if not isinstance(recipients, list) or not recipients or not isinstance(recipients[0], dict):
        text = data.get("Message") if isinstance(data, dict) else None
        return DriverResult(
            error=DriverError(
                f"{NAME}_unexpected_response",
                f"Africa's Talking answered without a recipient ({text})"
                if isinstance(text, str)
                else "Africa's Talking answered without a recipient",
            )
        )
    recipient: dict[str, Any] = recipients[0]
    code = positive_int(recipient.get("statusCode"))
    if code not in ACCEPTED_CODES:
        word = recipient.get("status")
        text = word if isinstance(word, str) and word else STATUS_CODES.get(code or 0, "Error")
        return DriverResult(
            error=DriverError(
                f"{NAME}_{code}" if code is not None else f"{NAME}_unexpected_response",
                f"Africa's Talking refused the message: {text}",
                transient=code in TRANSIENT_CODES,
                reroutable=code in ACCOUNT_CODES,
            )
        )
    message_id = recipient.get("messageId")
    if not isinstance(message_id, str) or not message_id or message_id == "None":
        return DriverResult(
            error=DriverError(
                f"{NAME}_unexpected_response",
                "Africa's Talking accepted the message without a messageId",
            )
        )
    assert isinstance(payload, dict)
    return DriverResult(provider_message_id=message_id, response=stored(payload, redact=redact))


def stored(payload: Mapping[str, Any], *, redact: bool) -> dict[str, Any]:
    if not redact:
        return dict(payload)
    data = payload.get("SMSMessageData")
    recipients = data.get("Recipients") if isinstance(data, dict) else None
    return {
        "Recipients": [
            {k: v for k, v in r.items() if k in SAFE_RECIPIENT_FIELDS}
            for r in (recipients if isinstance(recipients, list) else [])
            if isinstance(r, dict)
        ]
    }
