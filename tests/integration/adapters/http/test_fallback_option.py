"""The ``fallback`` field of ``POST /conversa/messages``: taken on a WhatsApp send, refused
with 422 naming the field otherwise."""

from __future__ import annotations

from tests.integration.adapters.http.conftest import Api


def test_the_fallback_field(api: Api) -> None:
    fallback = {"channel": "sms", "after_seconds": 600}
    sent = api.post(
        "/conversa/messages",
        json={"channel": "whatsapp", "to": "+15551234567", "body": "hi", "fallback": fallback},
        headers=api.auth,
    )
    assert sent.status_code == 201, sent.text
    shown = api.get(f"/conversa/messages/{sent.json()['id']}", headers=api.auth).json()
    assert [e["type"] for e in shown["events"]][:2] == ["queued", "fallback_requested"]
    refusals = {
        "fallback": {"channel": "sms", "to": "+15551234567", "body": "hi", "fallback": fallback},
        "fallback.after_seconds": {
            "channel": "whatsapp",
            "to": "+15551234567",
            "body": "hi",
            "fallback": {"channel": "sms", "after_seconds": -1},
        },
    }
    for field, document in refusals.items():
        response = api.post("/conversa/messages", json=document, headers=api.auth)
        assert response.status_code == 422, response.text
        assert field in response.json()["error"]["fields"], response.text
