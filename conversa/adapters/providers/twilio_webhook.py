"""Twilio status callbacks: the signature check and the parsing, without HTTP or storage.

Twilio posts a form (``application/x-www-form-urlencoded``) to the ``StatusCallback`` URL the
driver gave it, ``{CONVERSA_WEBHOOK_BASE_URL}/conversa/webhooks/twilio?message_id=<uuid>``,
and signs it in ``X-Twilio-Signature``::

    base64(HMAC-SHA1(auth token, url + name1 + value1 + name2 + value2 ...))

with the parameter names in sorted order and, for a name sent more than once, each distinct
value in sorted order (twilio-python's ``RequestValidator``). ``url`` is the URL Twilio
requested, which the app behind a proxy cannot see: :func:`public_url` rebuilds it from the
configured public base URL. A route does, in this order::

    form = parse_form(raw_body)                                   # MalformedWebhook -> 400
    url = public_url(settings.webhook_base_url, raw_path, raw_query)
    verify_twilio_signature(auth_token=..., url=url, form=form,
                            signature=headers.get("X-Twilio-Signature"))  # SignatureError -> 403
    report = parse_twilio_callback(form, query.get("message_id"))  # None: 200, nothing to apply
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

from conversa.adapters.providers.webhooks import (
    MalformedWebhook,
    SignatureError,
    storable_id,
    storable_text,
)
from conversa.app.reports import StatusReport
from conversa.domain.status import Status

PROVIDER: Final = "twilio"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
#: More fields than any status callback carries (about twenty): a bound on the work a
#: forged request can cause before its signature is checked.
MAX_FORM_FIELDS: Final = 1000

#: ``MessageStatus`` (or the legacy ``SmsStatus``) on the lattice. ``receiving`` and
#: ``received`` describe inbound messages, not ours, so they are absent like unknown values.
STATUSES: Final = {
    "accepted": Status.QUEUED,
    "scheduled": Status.QUEUED,
    "queued": Status.QUEUED,
    "sending": Status.QUEUED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "partially_delivered": Status.DELIVERED,
    "read": Status.READ,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}
CANCELED: Final = "canceled"

#: The asynchronous errors a status callback most often carries, in a few words; the rest are
#: "Twilio error <code>" (twilio.com/docs/api/errors/<code> explains each).
ERROR_MEANINGS: Final = {
    "30001": "Queue overflow",
    "30003": "Unreachable destination handset",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error from the carrier",
    "30034": "US A2P 10DLC: message from an unregistered number",
    "63016": "WhatsApp: free-form message outside the 24-hour customer service window",
    "63018": "Rate limit exceeded for the channel",
    "63024": "WhatsApp: invalid message recipient",
}

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_PORT_SUFFIX = re.compile(r":(\d*)$")


def parse_form(raw_body: bytes) -> list[tuple[str, str]]:
    """The pairs of a form-encoded body, in order, blank values kept.

    Raises :class:`MalformedWebhook` when the body is not UTF-8, when a percent-escape
    decodes to bytes that are not UTF-8, or when it has more than :data:`MAX_FORM_FIELDS`
    fields. Otherwise this is ``parse_qsl(body, keep_blank_values=True)``: '+' is a space, a
    field without '=' has a blank value, empty fields (``a=1&&b=2``) are skipped.
    """
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedWebhook("the form body is not valid UTF-8") from None
    try:
        return parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        raise MalformedWebhook("a form value is not valid UTF-8 once percent-decoded") from None
    except ValueError:
        raise MalformedWebhook(f"the form has more than {MAX_FORM_FIELDS} fields") from None


def public_url(base_url: str, path: str, raw_query: str) -> str:
    """The URL Twilio requested: the public base URL (``scheme://host[:port][/prefix]``, a
    trailing '/' ignored), then ``path`` as the app received it, then ``?`` and the query
    string exactly as received (not decoded or re-encoded), or nothing when it is empty.

    ``path`` should be the raw (still percent-encoded) path; Conversa's own webhook paths
    contain nothing that encoding would change.
    """
    if not path.startswith("/"):
        path = "/" + path
    url = base_url.rstrip("/") + path
    return f"{url}?{raw_query}" if raw_query else url


def twilio_signature(auth_token: str, url: str, form: Sequence[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` for a form POST to ``url``, as Twilio computes it."""
    values: dict[str, set[str]] = {}
    for name, value in form:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    mac = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URLs a signature is checked against: ``url`` as given, and with the scheme's
    default port removed (when it is there) or added (when no port is given). Twilio signs
    with or without the port inconsistently; the other scheme is never tried, nor is a
    non-default port ever removed."""
    variants = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return variants
    default = _DEFAULT_PORTS.get(parts.scheme)
    start = len(parts.scheme) + 3  # "https://"
    netloc = parts.netloc
    if default is None or not netloc or url[start : start + len(netloc)] != netloc:
        return variants
    rest = url[start + len(netloc) :]
    head = url[:start]
    port = _PORT_SUFFIX.search(netloc) if not netloc.endswith("]") else None
    if port is None:
        variants.append(f"{head}{netloc}:{default}{rest}")
    elif port.group(1) and int(port.group(1)) == default:
        variants.append(head + netloc[: port.start()] + rest)
    return variants


def verify_twilio_signature(
    *,
    auth_token: str | None,
    url: str,
    form: list[tuple[str, str]],
    signature: str | None,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` (the ``X-Twilio-Signature``
    header) is Twilio's signature of ``url`` and ``form`` with ``auth_token``.

    ``url`` is the public URL (:func:`public_url`), ``form`` the decoded pairs
    (:func:`parse_form`), every field included, known or not. With no token configured
    every request is refused.
    """
    if not auth_token:
        raise SignatureError("no Twilio auth token is configured")
    received = (signature or "").strip()
    if not received:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing or empty")
    received_bytes = received.encode("utf-8")
    for candidate in url_variants(url):
        expected = twilio_signature(auth_token, candidate, form).encode("ascii")
        if hmac.compare_digest(expected, received_bytes):
            return
    raise SignatureError(f"the {SIGNATURE_HEADER} header does not match the request")


def parse_twilio_callback(
    form: list[tuple[str, str]], query_message_id: str | None
) -> StatusReport | None:
    """The status report of a (verified) status callback, or None when the callback is not
    about an outbound status (an inbound ``received`` message, an unknown status).

    ``query_message_id`` is the ``message_id`` query parameter of the callback URL; when it
    is not a UUID the report is matched by ``MessageSid`` alone. Raises
    :class:`MalformedWebhook` when neither a message SID nor a status is present, or when a
    status comes with nothing to match it by (no SID and no message id).
    """
    sid = _field(form, "MessageSid") or _field(form, "SmsSid")
    raw_status = _field(form, "MessageStatus") or _field(form, "SmsStatus")
    if sid is None and raw_status is None:
        raise MalformedWebhook("the callback has neither MessageSid nor MessageStatus")
    if raw_status is None:
        return None
    status = STATUSES.get(raw_status.lower())
    if status is None:
        return None
    message_id = _uuid(query_message_id)
    if sid is None and message_id is None:
        raise MalformedWebhook("the callback has a status but no MessageSid and no message_id")
    if sid is not None:
        storable_id(sid, "MessageSid")
    error_code = _field(form, "ErrorCode")
    if error_code is not None:
        error_code = storable_text(error_code)
    error_message = None
    if raw_status.lower() == CANCELED:
        error_code, error_message = CANCELED, "The scheduled message was canceled"
    elif error_code is not None:
        error_message = ERROR_MEANINGS.get(error_code, f"Twilio error {error_code}")
    return StatusReport(
        provider=PROVIDER,
        provider_message_id=sid,
        message_id=message_id,
        status=status,
        raw_status=raw_status,
        error_code=error_code,
        error_message=error_message,
        occurred_at=None,
    )


def _field(form: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first non-blank value of ``name``, stripped; None when there is none."""
    for key, value in form:
        if key == name and value.strip():
            return value.strip()
    return None


def _uuid(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
