"""What the providers' webhook adapters share: the two ways a webhook request is refused.

Both exceptions carry a message that says why, for logs and metrics. The message never
holds a secret, a computed or received signature, or the request body.
"""

from __future__ import annotations

from conversa.domain.text import UNSTORABLE, is_storable


class SignatureError(Exception):
    """The request is not proven to come from the provider: no secret is configured (fail
    closed), the signature header is missing, or it does not match. Answered with 403."""


class MalformedWebhook(Exception):
    """The request cannot be read as the provider's webhook format. Answered with 400."""


def storable_id(value: str, what: str) -> str:
    """``value``, an identifier a report is matched or stored by; :class:`MalformedWebhook`
    when it holds a character no store can take (NUL, an unpaired surrogate)."""
    if not is_storable(value):
        raise MalformedWebhook(f"{what} {UNSTORABLE}")
    return value


def storable_text(value: str) -> str:
    """``value``, an informational text (an error code or message), with each character no
    store can take replaced by U+FFFD: the report is still recorded."""
    if is_storable(value):
        return value
    return "".join("\ufffd" if not is_storable(char) else char for char in value)
