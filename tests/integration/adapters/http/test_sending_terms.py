"""``category``, ``consent`` and ``send_at`` on a send: recorded on the message, covered by
its idempotency, refused by field when malformed, and ``"consent": "ignore"`` only for a
token allowed to ask for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from conversa.app.messages import load_message
from tests.integration.adapters.http.conftest import Api

MESSAGES = "/conversa/messages"


def stored_count(api: Api) -> int:
    return len(api.service.app.recorder.select_notifications(start=None, limit=10_000))


def test_terms_are_recorded_replayed_and_refused(api: Api) -> None:
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    local = at.astimezone().isoformat()  # the same instant, in another spelling
    document = {
        "channel": "sms",
        "to": "+15551234567",
        "body": "Our winter sale starts now",
        "category": "marketing",
        "send_at": local,
    }
    key = {"Idempotency-Key": "winter-sale-1"}
    sent = api.post(MESSAGES, json=document, headers={**api.auth, **key})
    assert sent.status_code == 201, sent.text
    resource = sent.json()
    assert resource["category"] == "marketing"
    assert resource["scheduled_at"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    stored = load_message(api.service.app, UUID(resource["id"]))
    assert (stored.category, stored.scheduled_at, stored.consent_override) == (
        "marketing",
        at,
        False,
    )

    replay = api.post(MESSAGES, json=document, headers={**api.auth, **key})
    assert replay.status_code == 200 and replay.json()["id"] == resource["id"]
    moved = {**document, "send_at": (at + timedelta(hours=1)).isoformat()}
    mismatch = api.post(MESSAGES, json=moved, headers={**api.auth, **key})
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["code"] == "idempotency_key_mismatch"

    plain = api.post(
        MESSAGES,
        json={"channel": "sms", "to": "+15551234567", "body": "code 1234"},
        headers=api.auth,
    )
    assert plain.status_code == 201
    assert (plain.json()["category"], plain.json()["scheduled_at"]) == ("transactional", None)

    before = stored_count(api)
    refusals = {
        "category": {"category": "promo"},
        "consent": {"consent": "skip"},
        "send_at": {"send_at": "2026-12-24T09:00:00"},
    }
    far = (datetime.now(UTC) + timedelta(days=36)).isoformat()
    for field, extra in [*refusals.items(), ("send_at", {"send_at": far})]:
        refused = api.post(MESSAGES, json={**document, **extra}, headers=api.auth)
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["error"]["fields"], refused.text
    assert stored_count(api) == before


def test_only_an_allowed_token_may_ignore_consent(api: Api) -> None:
    notice = {
        "channel": "sms",
        "to": "+15551234567",
        "body": "Your account will be closed on 1 January",
        "consent": "ignore",
    }
    before = stored_count(api)
    refused = api.post(MESSAGES, json=notice, headers=api.auth)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "consent_override_not_allowed"
    batch = api.post(f"{MESSAGES}/batch", json={"messages": [notice]}, headers=api.auth)
    assert batch.status_code == 403
    assert stored_count(api) == before

    _info, secret = api.service.tokens.create("legal-notices", allow_consent_override=True)
    allowed = {"Authorization": f"Bearer {secret}"}
    sent = api.post(MESSAGES, json=notice, headers=allowed)
    assert sent.status_code == 201, sent.text
    assert load_message(api.service.app, UUID(sent.json()["id"])).consent_override is True
    queued = api.post(
        f"{MESSAGES}/batch",
        json={"messages": [{**notice, "category": "marketing"}]},
        headers=allowed,
    )
    assert queued.status_code == 202, queued.text
    (item,) = queued.json()["data"]
    assert item["status"] == 201 and item["message"]["category"] == "marketing"
    assert load_message(api.service.app, UUID(item["message"]["id"])).consent_override is True
