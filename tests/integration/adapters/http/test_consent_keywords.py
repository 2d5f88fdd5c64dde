"""Consent keywords through each provider's real, signed webhook, on both stores: after a
STOP, a send on that channel is recorded failed (``recipient_opted_out``) with no call at
the fake provider; a provider's retry of the STOP records nothing new; after a START the
next send goes out; the recipient's history shows both, with their source, keyword,
message and time. With ``CONVERSA_OPT_OUT_REPLY``, the STOP is answered once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.domain.inbound import inbound_message_id_for
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
from tests.fakes.providers import (
    TWILIO_SID,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeProvider,
    FakeTwilio,
    FakeWhatsAppCloud,
)
from tests.fakes.providers import TWILIO_TOKEN as TWILIO_API_TOKEN
from tests.fakes.regional import VONAGE_KEY, VONAGE_SECRET, FakeVonage
from tests.integration.adapters.http.conftest import APP_SECRET, PUBLIC, Api, running_api
from tests.support import make_settings

SIGNATURE_SECRET = "vonage-signature-secret-for-tests"
OPT_OUT_REPLY = "You are unsubscribed. Reply START to resubscribe."


@dataclass
class Provider:
    name: str
    channel: str
    fake: Callable[[], FakeProvider]
    #: Posts an inbound ``text`` with the provider's message id ``pid``; the response.
    post: Callable[[Api, str, str], int]
    settings: Callable[[str], dict[str, str]]


def _twilio_post(api: Api, pid: str, text: str) -> int:
    raw, headers = twilio_request(TWILIO_API_TOKEN, PUBLIC, twilio_incoming(pid, body=text))
    return api.post("/conversa/webhooks/twilio", content=raw, headers=headers).status_code


def _meta_post(api: Api, pid: str, text: str) -> int:
    raw = meta_messages(meta_message(pid, "text", {"body": text}))
    return api.post(
        "/conversa/webhooks/whatsapp_cloud", content=raw, headers=meta_request(APP_SECRET, raw)
    ).status_code


def _vonage_post(api: Api, pid: str, text: str) -> int:
    params = vonage_inbound(SIGNATURE_SECRET, pid, text)
    return api.post(
        "/conversa/webhooks/vonage",
        content=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).status_code


PROVIDERS = {
    "twilio": Provider(
        "twilio",
        "sms",
        FakeTwilio,
        _twilio_post,
        lambda url: {
            "sms_driver": "twilio",
            "twilio_sid": TWILIO_SID,
            "twilio_token": TWILIO_API_TOKEN,
            "twilio_sms_from": BUSINESS,
            "twilio_api_base": url,
        },
    ),
    "whatsapp_cloud": Provider(
        "whatsapp_cloud",
        "whatsapp",
        FakeWhatsAppCloud,
        _meta_post,
        lambda url: {
            "whatsapp_driver": "whatsapp_cloud",
            "whatsapp_phone_id": WHATSAPP_PHONE_ID,
            "whatsapp_token": WHATSAPP_TOKEN,
            "whatsapp_api_base": url,
        },
    ),
    "vonage": Provider(
        "vonage",
        "sms",
        FakeVonage,
        _vonage_post,
        lambda url: {
            "sms_driver": "vonage",
            "vonage_api_key": VONAGE_KEY,
            "vonage_api_secret": VONAGE_SECRET,
            "vonage_sms_from": "Conversa",
            "vonage_api_base": url,
        },
    ),
}


@contextmanager
def api_with(
    backend_url: str, provider: Provider, **extra: str
) -> Iterator[tuple[Api, FakeProvider]]:
    with provider.fake() as fake:
        settings = make_settings(
            backend_url,
            rate_limit="1000000/minute",
            webhook_base_url=PUBLIC,
            whatsapp_app_secret=APP_SECRET,
            vonage_signature_secret=SIGNATURE_SECRET,
            **provider.settings(fake.url),
            **extra,
        )
        migrate(settings)
        with bootstrap(settings) as service, running_api(service) as api:
            yield api, fake


def send(api: Api, channel: str) -> dict[str, object]:
    answer = api.post(
        "/conversa/messages",
        json={"channel": channel, "to": CONTACT, "body": "Hi"},
        headers=api.auth,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_stop_then_start_through_the_signed_webhook(backend_url: str, name: str) -> None:
    provider = PROVIDERS[name]
    other = "whatsapp" if provider.channel == "sms" else "sms"
    with api_with(backend_url, provider) as (api, fake):
        assert provider.post(api, "IN-STOP-1", "  stop ") == 200
        refused = send(api, provider.channel)
        assert refused["status"] == "failed"
        assert refused["error"] == {
            "code": "recipient_opted_out",
            "message": "the recipient opted out of messages on this channel",
        }
        assert fake.calls == 0
        assert send(api, other)["status"] != "failed"  # the log driver: another channel

        assert provider.post(api, "IN-STOP-1", "  stop ") == 200  # the provider's retry
        history = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()["history"]
        assert len(history) == 1

        assert provider.post(api, "IN-START-2", "Start") == 200
        sent = send(api, provider.channel)
        assert sent["status"] in ("sent", "delivered"), sent
        assert fake.calls == 1

        recipient = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()
        assert recipient["consent"][provider.channel]["all"] == "opted_in"
        assert recipient["consent"][other]["all"] == "unknown"
        first, second = recipient["history"]
        assert (first["type"], first["source"], first["keyword"]) == (
            "opted_out",
            "keyword",
            "STOP",
        )
        assert (second["type"], second["source"], second["keyword"]) == (
            "opted_in",
            "keyword",
            "START",
        )
        assert first["channel"] == second["channel"] == provider.channel
        assert first["message_id"] == str(inbound_message_id_for(provider.name, "IN-STOP-1"))
        assert first["occurred_at"] <= second["occurred_at"]


def test_an_opt_out_is_confirmed_once_even_though_it_blocks_everything_else(
    backend_url: str,
) -> None:
    with api_with(
        backend_url,
        PROVIDERS["twilio"],
        opt_out_reply=OPT_OUT_REPLY,
        help_reply="Text STOP to stop",
    ) as (api, fake):
        assert _twilio_post(api, "IN-STOP-9", "UNSUBSCRIBE") == 200
        assert fake.calls == 1  # the confirmation, past the consent check
        assert isinstance(fake, FakeTwilio)
        [reply] = fake.sent
        assert reply["body"] == OPT_OUT_REPLY
        assert reply["to"] == CONTACT
        assert _twilio_post(api, "IN-STOP-9", "UNSUBSCRIBE") == 200  # a retry: no second reply
        assert send(api, "sms")["status"] == "failed"
        assert fake.calls == 1
        assert _twilio_post(api, "IN-HELP-10", "help") == 200  # answered even now
        assert [m["body"] for m in fake.sent] == [OPT_OUT_REPLY, "Text STOP to stop"]
