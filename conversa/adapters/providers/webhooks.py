"""What the providers' webhook adapters share: the two ways a webhook request is refused.

Both exceptions carry a message that says why, for logs and metrics. The message never
holds a secret, a computed or received signature, or the request body.
"""

from __future__ import annotations


class SignatureError(Exception):
    """The request is not proven to come from the provider: no secret is configured (fail
    closed), the signature header is missing, or it does not match. Answered with 403."""


class MalformedWebhook(Exception):
    """The request cannot be read as the provider's webhook format. Answered with 400."""
