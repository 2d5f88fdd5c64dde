"""Signed webhooks whose content no parser or store can take are answered 400, never 500,
and text no store can hold never reaches a message's history (where it would stop the
PostgreSQL projection)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx

from conversa.adapters.providers.twilio_webhook import parse_twilio_callback, twilio_signature
from conversa.adapters.providers.whatsapp_webhook import meta_signature, parse_meta_webhook
from tests.integration.adapters.http.conftest import APP_SECRET, PUBLIC, TWILIO_TOKEN, Api


def post_meta(api: Api, raw: bytes) -> httpx.Response:
    return api.post(
        "/conversa/webhooks/whatsapp_cloud",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(APP_SECRET, raw),
        },
    )


def post_twilio(api: Api, raw: str, query: str = "") -> httpx.Response:
    path = "/conversa/webhooks/twilio" + (f"?{query}" if query else "")
    form = parse_qsl(raw, keep_blank_values=True)
    return api.post(
        path,
        content=raw.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC + path, form),
        },
    )


def meta_status(**status: Any) -> str:
    value = {"messaging_product": "whatsapp", "statuses": [status]}
    document = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(document)


def test_meta_bodies_no_parser_can_take_are_a_400(api: Api) -> None:
    cases = {
        "nested 100,000 deep": b"[" * 100_000,
        "a huge integer": b"9" * 5000,
        "a huge integer inside": meta_status(id="wamid.1", status="sent")
        .replace('"1"', "9" * 5000, 1)
        .encode(),
        "an id holding NUL": meta_status(id="wamid.\u0000", status="sent").encode(),
        "an id holding a lone surrogate": meta_status(id="wamid.1", status="sent")
        .replace("wamid.1", "wamid.\\ud800")
        .encode(),
    }
    for name, raw in cases.items():
        response = post_meta(api, raw)
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert response.json()["error"]["code"] == "malformed_webhook"


def test_a_twilio_form_with_nul_in_an_id_is_a_400(api: Api) -> None:
    response = post_twilio(api, "MessageSid=SM%00&MessageStatus=delivered")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_webhook"


def test_error_text_no_store_can_hold_is_cleaned_before_it_is_recorded() -> None:
    """A failure report's error code and message are kept, with the characters no store can
    hold replaced, so that the failure is recorded and the projection can write it."""
    failed = meta_status(
        id="wamid.1",
        status="failed",
        recipient_id="15551234567",
        errors=[{"code": "13\u00001", "title": "Bad \ud800 thing\u0000"}],
    )
    assert "\\ud800" in failed and "\\u0000" in failed  # escaped in the JSON, as Meta would
    (report,) = parse_meta_webhook(failed.encode()).reports
    assert (report.error_code, report.error_message) == ("13\ufffd1", "Bad \ufffd thing\ufffd")

    form = [("MessageSid", "SM1"), ("MessageStatus", "failed"), ("ErrorCode", "300\x0003")]
    twilio = parse_twilio_callback(form, None)
    assert twilio is not None
    assert twilio.error_code == "300\ufffd03"
    assert twilio.error_message == "Twilio error 300\ufffd03"
