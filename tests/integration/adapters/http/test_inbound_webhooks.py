"""Inbound messages through the real webhook endpoint: each signed fixture becomes exactly
one inbound record with the right fields; a forged one records nothing; a provider's retry
records nothing new and still answers 200."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import httpx
import pytest

from conversa.app.settings import Settings
from conversa.domain.inbound import InboundMessage, conversation_id_for, inbound_message_id_for
from tests.fakes.inbound import (
    BUSINESS,
    CONTACT,
    meta_message,
    meta_messages,
    meta_request,
    twilio_incoming,
    twilio_request,
    vonage_inbound,
)
from tests.integration.adapters.http.conftest import APP_SECRET, PUBLIC, TWILIO_TOKEN, Api
from tests.support import make_settings

VONAGE_SECRET = "vonage-signature-secret-for-tests"


@pytest.fixture
def settings(backend_url: str) -> Settings:
    return make_settings(
        backend_url,
        rate_limit="1000000/minute",
        webhook_base_url=PUBLIC,
        whatsapp_app_secret=APP_SECRET,
        twilio_token=TWILIO_TOKEN,
        vonage_signature_secret=VONAGE_SECRET,
    )


def recorded(api: Api, provider: str, provider_id: str) -> InboundMessage | None:
    message_id = inbound_message_id_for(provider, provider_id)
    events = list(api.service.app.events.get(message_id))
    if not events:
        return None
    assert len(events) == 1
    message: object = api.service.app.repository.get(message_id)
    assert isinstance(message, InboundMessage)
    return message


def inbound_count(api: Api) -> int:
    return sum(
        1
        for n in api.service.app.recorder.select_notifications(start=1, limit=10_000)
        if n.topic.endswith("InboundMessage.Received")
    )


def post_twilio(api: Api, form: list[tuple[str, str]], token: str = TWILIO_TOKEN) -> httpx.Response:
    raw, headers = twilio_request(token, PUBLIC, form)
    return api.post("/conversa/webhooks/twilio", content=raw, headers=headers)


def post_meta(api: Api, raw: bytes, secret: str = APP_SECRET) -> httpx.Response:
    return api.post(
        "/conversa/webhooks/whatsapp_cloud", content=raw, headers=meta_request(secret, raw)
    )


def test_a_twilio_sms_is_recorded_once_and_answered_with_empty_twiml(api: Api) -> None:
    form = twilio_incoming("SM" + "1" * 32, body="Yes, please")
    for _ in range(2):  # the second is Twilio's retry
        response = post_twilio(api, form)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text.endswith("<Response/>")
    message = recorded(api, "twilio", "SM" + "1" * 32)
    assert message is not None
    assert (message.channel, message.sender, message.recipient) == ("sms", CONTACT, BUSINESS)
    assert message.body == "Yes, please"
    assert message.kind == "text"
    assert message.media == []
    assert message.conversation_id == conversation_id_for("sms", BUSINESS, CONTACT)
    assert inbound_count(api) == 1


def test_a_twilio_whatsapp_message_with_media_and_a_button(api: Api) -> None:
    sid = "MM" + "2" * 32
    form = twilio_incoming(
        sid,
        body="",
        From=f"whatsapp:{CONTACT}",
        To=f"whatsapp:{BUSINESS}",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME2",
        MediaContentType1="application/pdf",
        ProfileName="Ada",
        WaId=CONTACT[1:],
        ButtonText="Confirm",
        ButtonPayload="confirm-123",
    )
    assert post_twilio(api, form).status_code == 200
    message = recorded(api, "twilio", sid)
    assert message is not None
    assert message.channel == "whatsapp"
    assert (message.sender, message.recipient) == (CONTACT, BUSINESS)
    assert message.profile_name == "Ada"
    assert message.kind == "button"
    assert message.body == "Confirm"
    assert message.details == {"payload": "confirm-123", "text": "Confirm"}
    assert [m["content_type"] for m in message.media] == ["image/jpeg", "application/pdf"]
    assert message.media[0]["url"].endswith("/ME1")


def test_a_twilio_status_callback_is_still_a_status_callback(api: Api) -> None:
    form = [("MessageSid", "SM" + "9" * 32), ("MessageStatus", "delivered")]
    response = post_twilio(api, form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert inbound_count(api) == 0


META_KINDS: dict[str, tuple[Any, dict[str, Any]]] = {
    "text": ({"body": "Hello there"}, {"body": "Hello there", "kind": "text"}),
    "button": (
        {"text": "Track order", "payload": "track"},
        {"body": "Track order", "details": {"text": "Track order", "payload": "track"}},
    ),
    "interactive": (
        {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}},
        {"body": "Yes", "details": {"type": "button_reply", "id": "b1", "title": "Yes"}},
    ),
    "image": (
        {"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "the receipt"},
        {
            "body": "the receipt",
            "media": [
                {"content_type": "image/jpeg", "id": "1479537139650973", "caption": "the receipt"}
            ],
        },
    ),
    "audio": ({"id": "a1", "mime_type": "audio/ogg; codecs=opus"}, {"kind": "audio", "body": None}),
    "video": ({"id": "v1", "mime_type": "video/mp4"}, {"kind": "video"}),
    "document": (
        {"id": "d1", "mime_type": "application/pdf", "filename": "invoice.pdf"},
        {"kind": "document"},
    ),
    "sticker": ({"id": "s1", "mime_type": "image/webp", "animated": False}, {"kind": "sticker"}),
    "location": (
        {"latitude": 52.52, "longitude": 13.405, "name": "Office"},
        {"body": None, "details": {"latitude": 52.52, "longitude": 13.405, "name": "Office"}},
    ),
    "contacts": (
        [{"name": {"formatted_name": "Bob"}, "phones": [{"phone": "+15550002222"}]}],
        {"kind": "contacts"},
    ),
    "reaction": (
        {"message_id": "wamid.OURS", "emoji": "👍"},
        {"body": "👍", "details": {"message_id": "wamid.OURS", "emoji": "👍"}},
    ),
    "order": ({"catalog_id": "1"}, {"kind": "unsupported", "details": {"type": "order"}}),
}


def test_every_meta_kind_becomes_one_inbound_message(api: Api) -> None:
    messages = [
        meta_message(f"wamid.{kind}", kind, content) for kind, (content, _) in META_KINDS.items()
    ]
    messages[0]["context"] = {"from": BUSINESS[1:], "id": "wamid.EARLIER"}
    response = post_meta(api, meta_messages(*messages))
    assert response.status_code == 200, response.text
    assert response.json()["inbound_recorded"] == len(META_KINDS)
    for kind, (_, expected) in META_KINDS.items():
        message = recorded(api, "whatsapp_cloud", f"wamid.{kind}")
        assert message is not None, kind
        assert (message.channel, message.sender, message.recipient) == (
            "whatsapp",
            CONTACT,
            BUSINESS,
        )
        assert message.profile_name == "Ada"
        if kind in ("image", "audio", "video", "document", "sticker"):
            assert message.media and message.media[0]["id"], kind
        for name, value in expected.items():
            assert getattr(message, name) == value, (kind, name)
        if "kind" not in expected:
            assert message.kind == kind
    assert recorded(api, "whatsapp_cloud", "wamid.text").context_id == "wamid.EARLIER"  # type: ignore[union-attr]
    # Meta's retry of the whole notification records nothing new.
    response = post_meta(api, meta_messages(*messages))
    assert response.json()["inbound_recorded"] == 0
    assert inbound_count(api) == len(META_KINDS)


def test_a_vonage_inbound_sms_is_recorded(api: Api) -> None:
    params = vonage_inbound(VONAGE_SECRET, "0B00000123456789", "STOP please")
    for _ in range(2):
        response = api.post(
            "/conversa/webhooks/vonage",
            content=urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200, response.text
    message = recorded(api, "vonage", "0B00000123456789")
    assert message is not None
    assert (message.channel, message.sender, message.recipient) == ("sms", CONTACT, BUSINESS)
    assert message.body == "STOP please"
    assert inbound_count(api) == 1


def test_forged_inbound_messages_record_nothing(api: Api) -> None:
    assert post_twilio(api, twilio_incoming("SM" + "3" * 32), token="wrong").status_code == 403
    raw = meta_messages(meta_message("wamid.forged", "text", {"body": "hi"}))
    assert post_meta(api, raw, secret="wrong").status_code == 403
    params = vonage_inbound("wrong-secret", "0B0000FORGED")
    response = api.post(
        "/conversa/webhooks/vonage",
        content=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403
    assert inbound_count(api) == 0


def test_five_concurrent_retries_record_the_message_once(api: Api) -> None:
    form = twilio_incoming("SM" + "4" * 32)
    start = threading.Barrier(5)
    statuses: list[int] = []

    def post() -> None:
        start.wait()
        statuses.append(post_twilio(api, form).status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 5
    assert inbound_count(api) == 1
    assert isinstance(inbound_message_id_for("twilio", "SM" + "4" * 32), UUID)
