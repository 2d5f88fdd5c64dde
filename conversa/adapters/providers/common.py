"""What the HTTP provider drivers share: error codes for network failures, and scrubbing of
provider messages before they are stored.

Error codes (``DriverError.code``) follow one scheme for every provider driver:

- ``<driver>_<provider code>`` when the provider names its error (``twilio_21211``,
  ``whatsapp_cloud_131026``): the provider's documentation explains it.
- ``<driver>_http_<status>`` when the answer carries no usable code (a proxy's HTML 503).
- ``<driver>_unreachable``: no connection could be made (or none was free in the pool), so
  nothing was sent. Transient.
- ``<driver>_timeout``: the request went out but no answer came in time, so the provider may
  have accepted the message. Transient (a retry may deliver twice: see DESIGN.md).
- ``<driver>_connection_error``: the connection broke mid-exchange. Transient, same caveat.
- ``<driver>_unexpected_response``: a success status without the message id. Permanent: the
  provider may well have accepted the message, and a retry could send it twice.
- ``unknown_template`` (no prefix; :class:`~.templates.UnknownTemplate`) and
  ``driver_unavailable`` come from Conversa itself, not from the provider.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import httpx

from conversa.app.ports import DriverError
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber

#: The prefix of Twilio's WhatsApp addresses.
WHATSAPP_ADDRESS = "whatsapp:"
#: Longest provider message kept in a DriverError (they are one or two sentences).
MAX_ERROR_MESSAGE = 500

# A run of digits, possibly with a leading + and the usual separators: what a phone number
# looks like inside a provider's sentence ("The 'To' number +15551234567 is not valid").
_NUMBERISH = re.compile(r"\+?\d[\d ().\-]{4,}\d")


def transport_error(driver: str, error: httpx.RequestError) -> DriverError:
    """A DriverError for a request that got no HTTP answer. All of them are transient.

    The message names the exception type only: httpx's own text can carry the URL.
    """
    kind = type(error).__name__
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return DriverError(
            f"{driver}_unreachable",
            f"could not connect to the {driver} API ({kind}); nothing was sent",
            transient=True,
        )
    if isinstance(error, httpx.TimeoutException):
        return DriverError(
            f"{driver}_timeout",
            f"the {driver} API did not answer in time ({kind}); the message may have been sent",
            transient=True,
        )
    return DriverError(
        f"{driver}_connection_error",
        f"the connection to the {driver} API failed ({kind}); the message may have been sent",
        transient=True,
    )


def json_body(response: httpx.Response) -> object:
    """The answer's JSON value, or None when it is not JSON (an HTML error page)."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def scrub(text: str, *, recipient: PhoneNumber, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the recipient's number (masked instead) or any of ``secrets``, cut to
    :data:`MAX_ERROR_MESSAGE` characters and to one line.

    Providers echo the number in their error messages ("The 'To' number +15551234567 is not a
    valid phone number"); DriverError messages end up in events, the read model and logs.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    digits = recipient.e164.removeprefix("+")

    def hide(match: re.Match[str]) -> str:
        found = re.sub(r"\D", "", match.group())
        # The whole number, or its national part (at least 7 digits, to leave dates alone).
        if found == digits or (len(found) >= 7 and digits.endswith(found)):
            return recipient.masked()
        return match.group()

    text = " ".join(_NUMBERISH.sub(hide, text).split())
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[: MAX_ERROR_MESSAGE - 1] + "…"
    return text


def sent_from(value: str | None) -> str | None:
    """The sender a driver used, as :attr:`DriverResult.sender` reports it: a phone number
    in E.164 (``whatsapp:`` dropped; Vonage's ``15550001111`` gets its ``+``), so that it
    names the same conversation as the contact's answers, whose ``to`` is in E.164; an
    alphanumeric sender id or a short code as it is; None for nothing."""
    if value is None:
        return None
    text = value.removeprefix(WHATSAPP_ADDRESS).strip()
    if not text:
        return None
    digits = text.removeprefix("+")
    if text.startswith("+") or (digits.isascii() and digits.isdigit()):
        try:
            return PhoneNumber.parse("+" + digits, field="from").e164
        except InvalidPhoneNumber:
            return text  # a short code
    return text


def positive_int(value: object) -> int | None:
    """An error code as an int, whether the provider sent ``21211`` or ``"21211"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    # isdigit() alone accepts digits such as "²" that int() refuses.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
