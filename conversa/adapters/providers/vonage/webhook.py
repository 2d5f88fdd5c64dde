"""Vonage's webhooks: delivery receipts and inbound SMS, their signature, their parsing;
without HTTP or storage.

Vonage calls ``{CONVERSA_WEBHOOK_BASE_URL}/conversa/webhooks/vonage`` (the ``callback`` the
driver set, or the account's webhook for inbound SMS) with ``GET`` and the parameters in the
query, or ``POST`` with a form or a JSON object, as configured in its dashboard. A route does::

    params = webhook_params(method, content_type, raw_body, query)     # MalformedWebhook -> 400
    verify_vonage_signature(params, secret=..., method=..., now=...)   # SignatureError -> 403
    hook = parse_vonage_webhook(params, query_message_id)

Signed webhooks carry ``timestamp`` (Unix seconds), ``nonce`` and ``sig``: a hex digest of
every other parameter, sorted by name, joined as ``&name=value`` with ``&`` and ``=`` in a
value replaced by ``_``. With ``md5hash`` (Vonage's default) the digest is the MD5 of that
string followed by the signature secret; with ``md5``, ``sha1``, ``sha256`` or ``sha512`` it
is the HMAC of the string keyed with the secret. A timestamp more than five minutes away from
our clock is refused, so that a captured request cannot be replayed later.

A delivery receipt has ``status`` (``accepted``, ``buffered``, ``delivered``, ``expired``,
``failed``, ``rejected``, ``unknown``), ``err-code``, ``messageId`` (the part's id) and
``client-ref`` (our message id). An inbound SMS has ``msisdn`` (the sender), ``to`` (our
number), ``text``, ``messageId`` and no status: it becomes an inbound message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from conversa.adapters.providers.twilio_webhook import parse_form
from conversa.adapters.providers.vonage.errors import dlr_error_text
from conversa.adapters.providers.webhooks import (
    MalformedWebhook,
    SignatureError,
    storable_id,
    storable_text,
)
from conversa.app.inbound import InboundReport
from conversa.app.reports import StatusReport
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber
from conversa.domain.status import Status

PROVIDER: Final = "vonage"
SIGNATURE_METHODS: Final = ("md5hash", "md5", "sha1", "sha256", "sha512")
#: How far a webhook's ``timestamp`` may be from our clock, in seconds.
MAX_CLOCK_SKEW: Final = 300
#: Our own query parameter on the callback URL; Vonage adds its own beside it on a GET.
MESSAGE_ID_PARAM: Final = "message_id"

STATUSES: Final = {
    "accepted": Status.SENT,
    "buffered": Status.SENT,
    "delivered": Status.DELIVERED,
    # The handset was not reached in time, or the carrier gave up: undelivered.
    "expired": Status.UNDELIVERED,
    "failed": Status.UNDELIVERED,
    # Vonage or the network refused it before it was sent.
    "rejected": Status.FAILED,
}


@dataclass(frozen=True, slots=True)
class VonageWebhook:
    """What one webhook request says: a delivery receipt's report (None when it records
    nothing, as for ``unknown``), or an inbound SMS."""

    report: StatusReport | None = None
    inbound: bool = False
    message: InboundReport | None = None


def webhook_params(
    method: str, content_type: str, raw_body: bytes, query: list[tuple[str, str]]
) -> dict[str, str]:
    """The parameters Vonage sent: the query of a GET (without our ``message_id``), or the
    form or JSON object of a POST. A name sent twice keeps its first value."""
    if method == "GET":
        pairs = [(k, v) for k, v in query if k != MESSAGE_ID_PARAM]
    elif content_type.split(";")[0].strip().lower() == "application/json":
        pairs = _json_pairs(raw_body)
    else:
        pairs = parse_form(raw_body)
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    if not params:
        raise MalformedWebhook("the webhook carries no parameters")
    return params


def _json_pairs(raw_body: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedWebhook("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the body is not a JSON object")
    pairs = []
    for name, value in document.items():
        if isinstance(value, bool) or value is None:
            text = json.dumps(value)  # true/false/null, as they were sent
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise MalformedWebhook(f"parameter {name!r} is not a plain value")
        pairs.append((name, text))
    return pairs


def signed_string(params: Mapping[str, str]) -> str:
    """``&name=value`` for each parameter but ``sig``, sorted by name, with ``&`` and ``=``
    inside values replaced by ``_``."""
    return "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    )


def vonage_signature(params: Mapping[str, str], secret: str, method: str = "md5hash") -> str:
    """The lowercase hex ``sig`` Vonage computes for ``params`` (``sig`` itself ignored)."""
    joined = signed_string(params).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(joined + secret.encode("utf-8")).hexdigest()
    if method not in SIGNATURE_METHODS:
        raise ValueError(f"unknown signature method {method!r}")
    return hmac.new(secret.encode("utf-8"), joined, method).hexdigest()


def verify_vonage_signature(
    params: Mapping[str, str],
    *,
    secret: str | None,
    method: str,
    now: float,
    query: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``params`` carry Vonage's valid ``sig`` and a
    ``timestamp`` within :data:`MAX_CLOCK_SKEW` seconds of ``now``. Without a secret every
    request is refused.

    ``query``: on a GET, the whole query; should Vonage include our own ``message_id`` in
    what it signs, the signature is checked with it too.
    """
    if not secret:
        raise SignatureError("no Vonage signature secret is configured")
    received = params.get("sig", "").strip().lower()
    if not received:
        raise SignatureError("the sig parameter is missing or empty")
    stamp = params.get("timestamp", "").strip()
    if not (stamp.isascii() and stamp.isdigit()):
        raise SignatureError("the timestamp parameter is missing or not a number")
    if abs(now - int(stamp)) > MAX_CLOCK_SKEW:
        raise SignatureError("the timestamp is more than 5 minutes away from our clock")
    candidates = [dict(params)]
    if query is not None and MESSAGE_ID_PARAM in query:
        candidates.append({**params, MESSAGE_ID_PARAM: query[MESSAGE_ID_PARAM]})
    for candidate in candidates:
        expected = vonage_signature(candidate, secret, method)
        if hmac.compare_digest(expected.encode("ascii"), received.encode("utf-8")):
            return
    raise SignatureError("the sig parameter does not match the request")


def parse_vonage_webhook(params: Mapping[str, str], query_message_id: str | None) -> VonageWebhook:
    """What a verified webhook says. Raises :class:`MalformedWebhook` when it is neither a
    delivery receipt nor an inbound message, or names no message at all."""
    status_word = _field(params, "status")
    if status_word is None:
        if _field(params, "msisdn") is not None and "text" in params:
            return VonageWebhook(inbound=True, message=_inbound(params))
        raise MalformedWebhook("the webhook is neither a delivery receipt nor an inbound SMS")
    part_id = _field(params, "messageId", "message-id")
    message_id = _uuid(_field(params, "client-ref", "clientRef")) or _uuid(query_message_id)
    if part_id is None and message_id is None:
        raise MalformedWebhook("the delivery receipt names neither client-ref nor messageId")
    if part_id is not None:
        storable_id(part_id, "messageId")
    status = STATUSES.get(status_word.lower())
    if status is None:
        return VonageWebhook()  # "unknown" (or a word Vonage adds later): nothing to record
    error_code = error_message = None
    err = _field(params, "err-code", "errCode")
    if status.is_final:
        err = storable_text(err) if err is not None else None
        error_code = f"{PROVIDER}_dlr_{err}" if err else f"{PROVIDER}_{status_word.lower()}"
        error_message = (
            dlr_error_text(err) if err else f"Vonage reported the message {status_word.lower()}"
        )
    return VonageWebhook(
        report=StatusReport(
            provider=PROVIDER,
            provider_message_id=part_id,
            message_id=message_id,
            status=status,
            raw_status=status_word,
            error_code=error_code,
            error_message=error_message,
            part_id=part_id,
        )
    )


def _inbound(params: Mapping[str, str]) -> InboundReport:
    message_id = _field(params, "messageId", "message-id")
    if message_id is None:
        raise MalformedWebhook("the inbound SMS has no messageId")
    storable_id(message_id, "messageId")
    text = params.get("text") or None
    return InboundReport(
        provider=PROVIDER,
        provider_message_id=message_id,
        channel=Channel.SMS,
        sender=_number(_field(params, "msisdn"), "msisdn"),
        recipient=_number(_field(params, "to"), "to"),
        body=storable_text(text) if text else None,
        kind="text",
    )


def _number(digits: str | None, name: str) -> str:
    if digits is None:
        raise MalformedWebhook(f"the inbound SMS has no {name}")
    text = digits if digits.startswith("+") else "+" + digits
    try:
        return PhoneNumber.parse(text).e164
    except InvalidPhoneNumber:
        raise MalformedWebhook(f"{name} is not a phone number") from None


def _field(params: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _uuid(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
