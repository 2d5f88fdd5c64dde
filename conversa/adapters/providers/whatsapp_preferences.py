"""Meta's ``user_preferences`` webhook: a WhatsApp user stopped (or resumed) marketing
messages from the business.

A change with ``field: "user_preferences"`` carries, in its value, a list
``user_preferences`` of ``{"wa_id", "category": "marketing_messages", "value": "stop" |
"resume", "detail", "timestamp"}``. Each becomes an opt-out or opt-in of scope
``marketing`` on the ``whatsapp`` channel (source ``provider``). Items of another category
or value, or whose ``wa_id`` is not a phone number, are skipped; the signature was checked
before this is read.
"""

from __future__ import annotations

import json
from typing import Any

from conversa.app.consent import ConsentSignal
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber
from conversa.domain.recipient import OPTED_IN, OPTED_OUT, SCOPE_MARKETING

FIELD = "user_preferences"
CATEGORY = "marketing_messages"
VALUES = {"stop": OPTED_OUT, "resume": OPTED_IN}


def parse_user_preferences(raw_body: bytes) -> list[ConsentSignal]:
    """The consent signals of a verified Meta notification (none in most of them)."""
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError):
        return []  # the notification's own parser refuses it
    signals: list[ConsentSignal] = []
    for change in _changes(payload):
        value = change.get("value")
        items = value.get(FIELD) if isinstance(value, dict) else None
        for item in items if isinstance(items, list) else []:
            signal = _signal(item)
            if signal is not None:
                signals.append(signal)
    return signals


def _changes(payload: Any) -> list[dict[str, Any]]:
    entries = payload.get("entry") if isinstance(payload, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict) and change.get("field") == FIELD:
                found.append(change)
    return found


def _signal(item: object) -> ConsentSignal | None:
    if not isinstance(item, dict) or item.get("category") != CATEGORY:
        return None
    status = VALUES.get(str(item.get("value")).lower())
    wa_id = item.get("wa_id")
    if status is None or not isinstance(wa_id, str):
        return None
    try:
        number = PhoneNumber.parse("+" + wa_id.lstrip("+"), field="wa_id").e164
    except InvalidPhoneNumber:
        return None
    return ConsentSignal(number, status, "whatsapp", SCOPE_MARKETING, FIELD)
