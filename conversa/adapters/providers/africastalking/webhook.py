"""Africa's Talking's delivery reports: the URL token and the parsing, without HTTP or storage.

Africa's Talking does not sign its callbacks. The delivery-report URL configured in its
dashboard carries a secret of ours instead:
``{CONVERSA_WEBHOOK_BASE_URL}/conversa/webhooks/africastalking?token=<token>``, compared in
constant time with ``CONVERSA_AFRICASTALKING_WEBHOOK_TOKEN``; without a configured token every
request is refused.

A report is a form (JSON accepted too) with ``id`` (the ``messageId`` of the send),
``status`` (Sent, Submitted, Buffered, Success, Rejected, Failed, AbsentSubscriber, Expired),
``phoneNumber``, ``networkCode``, ``retryCount`` and, on failure, ``failureReason``. It
names no id of ours: it is matched by the provider id. An incoming SMS posted to the same URL
(``from``, ``to``, ``text``, no status) is acknowledged; recording it is the business of
two-way messaging.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from conversa.adapters.providers.webhooks import (
    MalformedWebhook,
    SignatureError,
    storable_id,
    storable_text,
)
from conversa.app.reports import StatusReport
from conversa.domain.status import Status

PROVIDER: Final = "africastalking"

STATUSES: Final = {
    "sent": Status.SENT,
    "submitted": Status.SENT,
    "buffered": Status.SENT,
    "success": Status.DELIVERED,
    "rejected": Status.FAILED,
    "failed": Status.UNDELIVERED,
    "absentsubscriber": Status.UNDELIVERED,
    "expired": Status.UNDELIVERED,
}


@dataclass(frozen=True, slots=True)
class AfricasTalkingWebhook:
    report: StatusReport | None = None
    inbound: bool = False


def verify_url_token(*, expected: str | None, received: str | None) -> None:
    """Raise :class:`SignatureError` unless the URL's ``token`` is the configured one."""
    if not expected:
        raise SignatureError("no Africa's Talking webhook token is configured")
    if not received:
        raise SignatureError("the token query parameter is missing")
    if not hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8")):
        raise SignatureError("the token query parameter does not match")


def json_form(raw_body: bytes) -> list[tuple[str, str]]:
    """A JSON object's plain values as form pairs."""
    try:
        document = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedWebhook("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return [
        (str(k), str(v))
        for k, v in document.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
    ]


def parse_delivery_report(form: Sequence[tuple[str, str]]) -> AfricasTalkingWebhook:
    fields: dict[str, str] = {}
    for name, value in form:
        if value.strip():
            fields.setdefault(name, value.strip())
    word = fields.get("status")
    if word is None:
        if "from" in fields and "text" in form_names(form):
            return AfricasTalkingWebhook(inbound=True)
        raise MalformedWebhook("the report has no status")
    provider_id = fields.get("id")
    if provider_id is None:
        raise MalformedWebhook("the report has no id")
    storable_id(provider_id, "id")
    status = STATUSES.get(word.lower())
    if status is None:
        return AfricasTalkingWebhook()
    error_code = error_message = None
    if status.is_final:
        reason = storable_text(fields.get("failureReason", word))
        error_code = f"{PROVIDER}_{reason}"
        error_message = f"Africa's Talking reported the message {word}: {reason}"
    return AfricasTalkingWebhook(
        report=StatusReport(
            provider=PROVIDER,
            provider_message_id=provider_id,
            message_id=None,
            status=status,
            raw_status=word,
            error_code=error_code,
            error_message=error_message,
        )
    )


def form_names(form: Sequence[tuple[str, str]]) -> set[str]:
    return {name for name, _ in form}
