"""Errors the domain raises when a request cannot be carried out.

    ConversaError
    ├── InvalidRequest            bad input; names the offending field
    │   ├── InvalidPhoneNumber    field "to" (or "from")
    │   ├── UnknownChannel        field "channel"
    │   ├── InvalidContent        field "body", "template" or one of its parts
    │   ├── InvalidTokenName      field "name" (domain/token.py)
    │   └── TokenNameTaken        field "name" (domain/token.py)
    └── IdempotencyKeyMismatch    a key reused for a different request

Each error carries a stable machine-readable ``code``; adapters map codes to their own
answers (the HTTP layer to 422, the command line to an exit status).
"""

from __future__ import annotations


class ConversaError(Exception):
    code = "conversa_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ConversaError):
    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidPhoneNumber(InvalidRequest):
    code = "invalid_phone_number"


class UnknownChannel(InvalidRequest):
    code = "unknown_channel"


class InvalidContent(InvalidRequest):
    code = "invalid_content"


class OutsideServiceWindow(InvalidRequest):
    """A free-form WhatsApp message to a contact who has not written in the last 24 hours
    (or never did): only a template may open the conversation."""

    code = "outside_customer_service_window"


class IdempotencyKeyMismatch(ConversaError):
    code = "idempotency_key_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different request; "
            "use a new key for a new message"
        )
