"""Signed inbound-message webhooks as the providers send them (built from their
documentation), for tests that post them to the real endpoint."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from conversa.adapters.providers.twilio_webhook import twilio_signature
from conversa.adapters.providers.vonage.webhook import vonage_signature
from conversa.adapters.providers.whatsapp_webhook import meta_signature

BUSINESS = "+15550001111"
CONTACT = "+15557654321"
ACCOUNT = "AC" + "0" * 32


def twilio_incoming(sid: str, body: str = "YES", **extra: str) -> list[tuple[str, str]]:
    """An incoming SMS (or, with ``whatsapp:`` addresses in ``extra``, WhatsApp) form."""
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": BUSINESS,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT,
        "From": CONTACT,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return list(form.items())


def twilio_request(
    token: str, public: str, form: list[tuple[str, str]], path: str = "/conversa/webhooks/twilio"
) -> tuple[bytes, dict[str, str]]:
    return urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, public + path, form),
    }


def meta_messages(
    *messages: dict[str, Any], name: str = "Ada", statuses: list[dict[str, Any]] | None = None
) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS[1:], "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": name}, "wa_id": CONTACT[1:]}],
        "messages": list(messages),
    }
    if statuses:
        value["statuses"] = statuses
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document).encode()


def meta_message(wamid: str, kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    message = {"from": CONTACT[1:], "id": wamid, "timestamp": "1749416383", "type": kind}
    message[kind] = content
    message.update(extra)
    return message


def meta_request(secret: str, raw: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta_signature(secret, raw),
    }


def vonage_inbound(secret: str, message_id: str, text: str = "STOP") -> dict[str, str]:
    params = {
        "msisdn": CONTACT[1:],
        "to": BUSINESS[1:],
        "messageId": message_id,
        "text": text,
        "type": "text",
        "keyword": text.split()[0].upper() if text else "",
        "message-timestamp": "2026-12-06 09:00:00",
        "timestamp": str(int(time.time())),
        "nonce": "0f8d4c8b-2f0b-4d5f-9a8f-2b8a4d3f1e11",
    }
    params["sig"] = vonage_signature(params, secret)
    return params
