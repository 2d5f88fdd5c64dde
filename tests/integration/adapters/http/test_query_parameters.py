"""A query parameter an application endpoint does not know is refused with 422 naming it
(``?stauts=failed`` must not list everything); the webhooks take any parameter, since
providers add their own to the URLs they call."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from conversa.adapters.providers.twilio_webhook import twilio_signature
from conversa.adapters.providers.whatsapp_webhook import meta_signature
from tests.integration.adapters.http.conftest import (
    APP_SECRET,
    PUBLIC,
    TWILIO_TOKEN,
    VERIFY_TOKEN,
    Api,
)


def send(api: Api, status_body: str = "hello") -> str:
    response = api.post(
        "/conversa/messages",
        json={"channel": "sms", "to": "+15551234567", "body": status_body},
        headers=api.auth,
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["id"]
    return message_id


def test_a_misspelt_filter_is_refused_not_ignored(api: Api) -> None:
    send(api)
    response = api.get("/conversa/messages?stauts=failed", headers=api.auth)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert list(error["fields"]) == ["stauts"]
    assert "'stauts'" in error["message"] and "status" in error["message"]

    # Known filters alone still work, and one unknown among them is refused.
    listed = api.get(
        "/conversa/messages?status=sent&channel=sms&page=1&per_page=5", headers=api.auth
    )
    assert listed.status_code == 200, listed.text
    mixed = api.get("/conversa/messages?status=sent&pagee=2", headers=api.auth)
    assert mixed.status_code == 422
    assert list(mixed.json()["error"]["fields"]) == ["pagee"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/conversa/messages?to=%2B15551234567&colour=red"),
        ("GET", "/conversa/events?live=false&aftr=3"),
        ("GET", "/conversa/events?live=false&types=message.sent&type=x&colour=red"),
        ("GET", "/conversa/messages/{id}?colour=red"),
        ("POST", "/conversa/messages?colour=red"),
    ],
)
def test_every_application_endpoint_names_the_unknown_parameter(
    api: Api, method: str, path: str
) -> None:
    message_id = send(api)
    before = api.service.app.recorder.max_notification_id()
    body = {"channel": "sms", "to": "+15551234567", "body": "x"} if method == "POST" else None
    response = api.request(method, path.format(id=message_id), json=body, headers=api.auth)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert list(fields) in (["aftr"], ["colour"]), fields
    assert api.service.app.recorder.max_notification_id() == before  # nothing sent


def test_known_event_parameters_are_accepted(api: Api) -> None:
    send(api)
    response = api.get("/conversa/events?after=0&types=message.sent&live=false", headers=api.auth)
    assert response.status_code == 200, response.text
    assert "event: message.sent" in response.text


def test_a_long_unknown_name_is_cut_short_in_the_error(api: Api) -> None:
    response = api.get("/conversa/messages?" + "x" * 5000 + "=1", headers=api.auth)
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert len(field) <= 64 and field.startswith("xxx")


def test_the_token_is_checked_before_the_query(api: Api) -> None:
    assert api.get("/conversa/messages?stauts=failed").status_code == 401


def test_webhooks_take_parameters_they_do_not_know(api: Api) -> None:
    message_id = send(api)
    path = f"/conversa/webhooks/twilio?message_id={message_id}&provider_added=1"
    form = [("MessageSid", "SM" + "0" * 32), ("MessageStatus", "delivered")]
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC + path, form)
    twilio = api.post(
        path,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert twilio.status_code == 200, twilio.text

    raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    meta = api.post(
        "/conversa/webhooks/whatsapp_cloud?extra=1",
        content=raw,
        headers={"X-Hub-Signature-256": meta_signature(APP_SECRET, raw)},
    )
    assert meta.status_code == 200, meta.text

    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
        "extra": "1",
    }
    handshake = api.get("/conversa/webhooks/whatsapp_cloud?" + urlencode(query))
    assert (handshake.status_code, handshake.text) == (200, "1158201444")
