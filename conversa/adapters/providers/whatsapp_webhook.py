"""Meta WhatsApp Cloud API webhooks: the subscription handshake, the signature check and the
parsing of status notifications, without HTTP or storage.

- ``GET`` handshake: ``hub.mode=subscribe``, ``hub.verify_token`` (ours), ``hub.challenge``
  (Meta's, echoed back as the body): :func:`verify_handshake`.
- ``POST`` notifications: JSON signed in ``X-Hub-Signature-256: sha256=<hex>``, the lowercase
  hex HMAC-SHA256 of the raw body bytes with the App Secret. The hash is over the bytes as
  received: Meta sends non-ASCII as ``\\uXXXX`` escapes, and parsing then re-serialising the
  JSON gives other bytes. So :func:`verify_meta_signature` comes first, on the raw body,
  then :func:`parse_meta_webhook` on the same bytes. The legacy ``X-Hub-Signature`` (SHA-1)
  is ignored.

A notification holds ``entry[].changes[]``; a change with ``field: "messages"`` carries
``value.statuses[]`` (what became of our messages) and/or ``value.messages[]`` (inbound
messages: :mod:`conversa.adapters.providers.whatsapp_inbound`). Each status becomes a
:class:`StatusReport`; our message id comes back in ``biz_opaque_callback_data``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from conversa.adapters.providers.common import MAX_ERROR_MESSAGE, scrub
from conversa.adapters.providers.webhooks import (
    MalformedWebhook,
    SignatureError,
    storable_id,
    storable_text,
)
from conversa.adapters.providers.whatsapp_inbound import parse_meta_messages
from conversa.app.inbound import InboundReport
from conversa.app.reports import StatusReport
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber
from conversa.domain.status import Status

PROVIDER: Final = "whatsapp_cloud"
SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
SIGNATURE_PREFIX: Final = "sha256="
OBJECT: Final = "whatsapp_business_account"
#: Meta batches "a maximum of 1000 updates" per request.
MAX_STATUSES: Final = 1000

#: Status values on the lattice. ``played`` (a voice message was first played) implies it
#: was read. Anything else (``deleted`` from the On-Premises API, values Meta adds later) is
#: counted in ``ignored_statuses``.
STATUSES: Final = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "played": Status.READ,
    "failed": Status.FAILED,
}


@dataclass(frozen=True, slots=True)
class MetaWebhook:
    """What one notification request says: the status reports in the order they came, the
    number of inbound messages, and the number of statuses with a value not on the lattice."""

    reports: list[StatusReport] = field(default_factory=list)
    inbound_messages: int = 0
    ignored_statuses: int = 0
    inbound: list[InboundReport] = field(default_factory=list)


def verify_handshake(
    *,
    mode: str | None,
    token: str | None,
    challenge: str | None,
    verify_token: str | None,
) -> str:
    """The challenge to echo back when Meta's subscription request is genuine: ``mode`` is
    ``subscribe``, a verify token is configured, ``token`` equals it, and a challenge is
    given. Otherwise raise :class:`SignatureError` (with no verify token configured, always)."""
    if not verify_token:
        raise SignatureError("no WhatsApp verify token is configured")
    if mode != "subscribe":
        raise SignatureError("hub.mode is not 'subscribe'")
    if not token:
        raise SignatureError("hub.verify_token is missing")
    if not hmac.compare_digest(token.encode("utf-8"), verify_token.encode("utf-8")):
        raise SignatureError("hub.verify_token does not match")
    if not challenge:
        raise SignatureError("hub.challenge is missing")
    return challenge


def meta_signature(app_secret: str, raw_body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``raw_body``, as Meta computes it."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_meta_signature(*, app_secret: str | None, raw_body: bytes, header: str | None) -> None:
    """Raise :class:`SignatureError` unless ``header`` (``X-Hub-Signature-256``) is
    ``sha256=`` and the hex HMAC-SHA256 of exactly ``raw_body`` with ``app_secret``. With no
    app secret configured every request is refused."""
    if not app_secret:
        raise SignatureError("no WhatsApp app secret is configured")
    received = (header or "").strip()
    if not received:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing or empty")
    if not received.startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"the {SIGNATURE_HEADER} header does not start with 'sha256='")
    expected = meta_signature(app_secret, raw_body).encode("ascii")
    if not hmac.compare_digest(expected, received.lower().encode("utf-8")):
        raise SignatureError(f"the {SIGNATURE_HEADER} header does not match the body")


def parse_meta_webhook(raw_body: bytes) -> MetaWebhook:
    """Every status report of a (verified) notification, in order, across every entry and
    change; inbound messages and statuses not on the lattice are only counted; changes of
    other fields are skipped.

    Raises :class:`MalformedWebhook` for a body that is not a JSON object of
    ``object: "whatsapp_business_account"`` with an ``entry`` list, for an item of the wrong
    shape (an entry, change, value or status that is not an object; a status without ``id``
    or ``status``), and for more than :data:`MAX_STATUSES` statuses in one request.
    """
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        raise MalformedWebhook("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    if payload.get("object") != OBJECT:
        raise MalformedWebhook(f"'object' is not {OBJECT!r}")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook("'entry' is not a list")

    values = [value for entry in entries for value in _message_values(entry)]
    total = 0
    for value in values:
        total += len(_list(value, "statuses")) + len(_list(value, "messages"))
        if total > MAX_STATUSES:
            raise MalformedWebhook(f"more than {MAX_STATUSES} statuses and messages in one request")

    reports: list[StatusReport] = []
    messages: list[InboundReport] = []
    inbound = ignored = 0
    for value in values:
        inbound += len(_list(value, "messages"))
        messages.extend(parse_meta_messages(value))
        for item in _list(value, "statuses"):
            report = _report(item)
            if report is None:
                ignored += 1
            else:
                reports.append(report)
    return MetaWebhook(
        reports=reports, inbound_messages=inbound, ignored_statuses=ignored, inbound=messages
    )


def _message_values(entry: object) -> list[dict[str, Any]]:
    """The ``value`` of each ``messages`` change of one entry."""
    if not isinstance(entry, dict):
        raise MalformedWebhook("an entry is not an object")
    values = []
    for change in _list(entry, "changes"):
        if not isinstance(change, dict):
            raise MalformedWebhook("a change is not an object")
        if change.get("field") != "messages":
            continue
        value = change.get("value")
        if not isinstance(value, dict):
            raise MalformedWebhook("the value of a messages change is not an object")
        values.append(value)
    return values


def _list(container: dict[str, Any], key: str) -> list[Any]:
    """``container[key]``: a list, or empty when absent or null."""
    items = container.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise MalformedWebhook(f"{key!r} is not a list")
    return items


def _report(item: object) -> StatusReport | None:
    """The report of one ``statuses[]`` item; None when its status is not on the lattice."""
    if not isinstance(item, dict):
        raise MalformedWebhook("a status is not an object")
    wamid = item.get("id")
    raw_status = item.get("status")
    if not isinstance(wamid, str) or not wamid:
        raise MalformedWebhook("a status has no 'id'")
    if not isinstance(raw_status, str) or not raw_status:
        raise MalformedWebhook("a status has no 'status'")
    storable_id(wamid, "a status's 'id'")
    status = STATUSES.get(raw_status)
    if status is None:
        return None
    error_code = error_message = None
    if status is Status.FAILED:
        error_code, error_message = _error(item.get("errors"))
        error_message = _masked(error_message, item.get("recipient_id"))
    return StatusReport(
        provider=PROVIDER,
        provider_message_id=wamid,
        message_id=_uuid(item.get("biz_opaque_callback_data")),
        status=status,
        raw_status=raw_status,
        error_code=error_code,
        error_message=error_message,
        occurred_at=_timestamp(item.get("timestamp")),
    )


def _error(errors: object) -> tuple[str | None, str | None]:
    """``errors[0]``'s code (as a string) and its title, message and details, each once.
    A missing or odd ``errors`` gives no code and no message rather than an error."""
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    error = errors[0]
    code = error.get("code")
    error_code = str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    parts: list[str] = []
    for part in (error.get("title"), error.get("message"), details):
        if isinstance(part, str) and part.strip() and part.strip() not in parts:
            parts.append(part.strip())
    text = " ".join(": ".join(parts).split())
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[: MAX_ERROR_MESSAGE - 1] + "…"
    return (
        storable_text(error_code) if error_code else None,
        storable_text(text) if text else None,
    )


def _timestamp(value: object) -> datetime | None:
    """Unix seconds (Meta sends a string of digits) as a UTC datetime; None when it is not."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        return None
    try:
        seconds = int(value)  # ValueError past 4,300 digits
        if seconds < 0:
            return None
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _uuid(value: object) -> UUID | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _masked(text: str | None, recipient_id: object) -> str | None:
    """``text`` with the recipient's number masked: failure messages are stored and shown."""
    if text is None or not isinstance(recipient_id, str) or not recipient_id.isdigit():
        return text
    try:
        recipient = PhoneNumber.parse("+" + recipient_id)
    except InvalidPhoneNumber:
        return text
    return scrub(text, recipient=recipient)
