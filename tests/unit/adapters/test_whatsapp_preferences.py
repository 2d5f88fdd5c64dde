"""Meta's ``user_preferences`` notifications read as consent signals; anything else in a
notification is not one."""

from __future__ import annotations

import json
from typing import Any

from conversa.adapters.providers.whatsapp_preferences import parse_user_preferences
from conversa.app.consent import ConsentSignal


def notification(*items: dict[str, Any], field: str = "user_preferences") -> bytes:
    change = {
        "field": field,
        "value": {"messaging_product": "whatsapp", "user_preferences": list(items)},
    }
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    ).encode()


def item(
    value: str, wa_id: str = "15557654321", category: str = "marketing_messages"
) -> dict[str, Any]:
    return {"wa_id": wa_id, "category": category, "value": value, "timestamp": 1731705721}


def test_stop_and_resume_are_marketing_opt_outs_and_opt_ins_on_whatsapp() -> None:
    signals = parse_user_preferences(notification(item("stop"), item("resume", "447911123456")))
    assert signals == [
        ConsentSignal("+15557654321", "opted_out", "whatsapp", "marketing", "user_preferences"),
        ConsentSignal("+447911123456", "opted_in", "whatsapp", "marketing", "user_preferences"),
    ]


def test_what_is_not_a_marketing_preference_is_skipped() -> None:
    assert parse_user_preferences(notification(item("stop", category="other"))) == []
    assert parse_user_preferences(notification(item("maybe"))) == []
    assert parse_user_preferences(notification(item("stop", wa_id="12"))) == []
    assert parse_user_preferences(notification(item("stop"), field="messages")) == []
    assert parse_user_preferences(b"not json") == []
    assert parse_user_preferences(b'{"entry": "nope"}') == []
