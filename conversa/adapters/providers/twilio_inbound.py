"""Twilio's incoming-message webhook, told apart from a status callback, and parsed into an
:class:`~conversa.app.inbound.InboundReport`; without HTTP or storage.

Twilio posts both to the same URL when the number's messaging webhook is Conversa's. An
incoming message has ``SmsStatus`` ``received`` (or ``receiving``) and no
``MessageStatus``, with ``From``, ``To``, ``Body``, ``MessageSid``, ``NumMedia`` and
``MediaUrl{n}``/``MediaContentType{n}``; on WhatsApp the addresses are ``whatsapp:+...``
and ``ProfileName``, ``WaId``, ``ButtonText``/``ButtonPayload`` may come too. It is
answered with empty TwiML (:data:`EMPTY_TWIML`), so Twilio sends no reply of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from conversa.adapters.providers.webhooks import MalformedWebhook, storable_id, storable_text
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber

PROVIDER: Final = "twilio"
EMPTY_TWIML: Final = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
WHATSAPP_PREFIX: Final = "whatsapp:"
#: Twilio takes at most 10 attachments per message.
MAX_MEDIA: Final = 10
INBOUND_STATUSES: Final = ("received", "receiving")


def is_incoming(form: Sequence[tuple[str, str]]) -> bool:
    """Whether a (verified) form is an incoming message rather than a status callback."""
    if _field(form, "MessageStatus") is not None:
        return False
    status = (_field(form, "SmsStatus") or "").lower()
    if status:
        return status in INBOUND_STATUSES
    # No status at all: an incoming message still has its sender, recipient and body.
    return _field(form, "From") is not None and any(k == "Body" for k, _ in form)


def parse_twilio_incoming(form: Sequence[tuple[str, str]]) -> InboundReport:
    """The inbound message of an incoming-message webhook. Raises :class:`MalformedWebhook`
    when its SID or addresses are missing or not numbers."""
    sid = _field(form, "MessageSid") or _field(form, "SmsMessageSid") or _field(form, "SmsSid")
    if sid is None:
        raise MalformedWebhook("the incoming message has no MessageSid")
    storable_id(sid, "MessageSid")
    raw_from, raw_to = _field(form, "From"), _field(form, "To")
    if raw_from is None or raw_to is None:
        raise MalformedWebhook("the incoming message lacks From or To")
    channel = Channel.WHATSAPP if raw_from.startswith(WHATSAPP_PREFIX) else Channel.SMS
    body = _value(form, "Body")
    details: dict[str, Any] | None = None
    button_text, button_payload = _field(form, "ButtonText"), _field(form, "ButtonPayload")
    kind = "text"
    if button_text is not None or button_payload is not None:
        kind = "button"
        details = {"payload": button_payload, "text": button_text}
        body = body or button_text
    media = _media(form)
    if media and not body:
        kind = _media_kind(media[0]["content_type"])
    return InboundReport(
        provider=PROVIDER,
        provider_message_id=sid,
        channel=channel,
        sender=_number(raw_from, "From"),
        recipient=_number(raw_to, "To"),
        body=storable_text(body) if body else None,
        kind=kind,
        media=media,
        details=details,
        profile_name=_field(form, "ProfileName"),
        context_id=_field(form, "OriginalRepliedMessageSid"),
    )


def _media(form: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    raw = _field(form, "NumMedia") or "0"
    if not (raw.isascii() and raw.isdigit()):
        raise MalformedWebhook("NumMedia is not a number")
    media = []
    for n in range(min(int(raw), MAX_MEDIA)):
        url = _field(form, f"MediaUrl{n}")
        if url is None:
            raise MalformedWebhook(f"MediaUrl{n} is missing")
        content_type = _field(form, f"MediaContentType{n}") or "application/octet-stream"
        media.append({"content_type": storable_text(content_type), "url": storable_id(url, "url")})
    return media


def _media_kind(content_type: str) -> str:
    major = content_type.split("/")[0]
    return major if major in ("image", "audio", "video") else "document"


def _number(value: str, name: str) -> str:
    text = value.removeprefix(WHATSAPP_PREFIX).strip()
    try:
        return PhoneNumber.parse(text).e164
    except InvalidPhoneNumber:
        raise MalformedWebhook(f"{name} is not a phone number") from None


def _field(form: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in form:
        if key == name and value.strip():
            return value.strip()
    return None


def _value(form: Sequence[tuple[str, str]], name: str) -> str | None:
    """The value as sent (a body keeps its spaces), or None when absent or empty."""
    for key, value in form:
        if key == name and value:
            return value
    return None
