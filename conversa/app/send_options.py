"""The sending terms of a request (``category``, ``consent``, ``send_at``), read once from
its options by every send path: synchronous, asynchronous and batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conversa.domain.sending import (
    Category,
    check_send_at,
    parse_consent_override,
    parse_send_at,
)

#: The options that make the terms, as a send's ``opts`` and the HTTP body name them.
TERMS_OPTIONS = frozenset({"category", "consent", "send_at"})


@dataclass(frozen=True, slots=True)
class SendingTerms:
    category: Category = Category.TRANSACTIONAL
    consent_override: bool = False
    #: When the message is to be attempted; None: at once.
    scheduled_at: datetime | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any], now: datetime) -> SendingTerms:
        """The terms of options already checked by :func:`check_terms`."""
        send_at = options.get("send_at")
        return cls(
            category=Category.parse(options.get("category")),
            consent_override=parse_consent_override(options.get("consent")),
            scheduled_at=None if send_at is None else check_send_at(send_at, now),
        )


def check_terms(options: dict[str, Any]) -> None:
    """Refuse malformed terms (``InvalidRequest`` naming the field), and put ``send_at`` in
    its one form (an aware UTC datetime), so that equal requests have equal digests."""
    Category.parse(options.get("category"))
    parse_consent_override(options.get("consent"))
    if "send_at" in options:
        options["send_at"] = parse_send_at(options["send_at"])


def fingerprint_terms(options: Mapping[str, Any]) -> dict[str, object]:
    """What the terms add to a request's digest: only those given, so that a request made
    before they existed keeps its digest."""
    described: dict[str, object] = {}
    for name in ("category", "consent"):
        if name in options:
            described[name] = options[name]
    if "send_at" in options:
        described["send_at"] = options["send_at"].isoformat()
    return described
