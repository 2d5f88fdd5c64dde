"""What the providers say about consent, on both stores: Twilio's 21610 on a send opts the
number out (source ``provider``), so the next send makes no call; Meta's 131050 on a
marketing template and its ``user_preferences`` webhook opt the number out of (and back
in to) marketing on WhatsApp only, transactional sends going on. Every change reaches
subscribers and the SSE stream as ``recipient.opted_out`` / ``recipient.opted_in``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.subscribers import SubscriberRunner
from conversa.events import LifecycleEvent, RecipientEvent, RecipientOptedIn, RecipientOptedOut
from tests.fakes.inbound import BUSINESS, CONTACT, meta_request
from tests.fakes.providers import (
    TWILIO_SID,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeTwilio,
    FakeWhatsAppCloud,
    meta_error,
    twilio_error,
)
from tests.fakes.providers import TWILIO_TOKEN as TWILIO_API_TOKEN
from tests.integration.adapters.http.conftest import APP_SECRET, PUBLIC, Api, running_api
from tests.integration.adapters.http.test_inbound_events import stream
from tests.support import make_settings


@contextmanager
def api_with(backend_url: str, **drivers: str) -> Iterator[Api]:
    settings = make_settings(
        backend_url,
        rate_limit="1000000/minute",
        webhook_base_url=PUBLIC,
        whatsapp_app_secret=APP_SECRET,
        **drivers,
    )
    migrate(settings)
    with bootstrap(settings) as service, running_api(service) as api:
        yield api


def send(api: Api, channel: str, **extra: object) -> dict[str, object]:
    body = {"channel": channel, "to": CONTACT, "body": "Hi", **extra}
    answer = api.post("/conversa/messages", json=body, headers=api.auth)
    assert answer.status_code == 201, answer.text
    result: dict[str, object] = answer.json()
    return result


def user_preferences(value: str) -> bytes:
    change = {
        "field": "user_preferences",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": BUSINESS[1:], "phone_number_id": "1"},
            "contacts": [{"wa_id": CONTACT[1:], "profile": {"name": "Ada"}}],
            "user_preferences": [
                {
                    "wa_id": CONTACT[1:],
                    "detail": "User requested to stop marketing messages",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": 1731705721,
                }
            ],
        },
    }
    document = {"object": "whatsapp_business_account", "entry": [{"id": "9", "changes": [change]}]}
    return json.dumps(document).encode()


def test_twilio_21610_opts_the_recipient_out_and_the_next_send_makes_no_call(
    backend_url: str,
) -> None:
    with FakeTwilio() as twilio:
        drivers = {
            "sms_driver": "twilio",
            "twilio_sid": TWILIO_SID,
            "twilio_token": TWILIO_API_TOKEN,
            "twilio_sms_from": BUSINESS,
            "twilio_api_base": twilio.url,
        }
        with api_with(backend_url, **drivers) as api:
            twilio.answer(twilio_error(21610))
            first = send(api, "sms")
            assert first["status"] == "failed"
            assert twilio.calls == 1
            recipient = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()
            assert recipient["consent"]["sms"]["all"] == "opted_out"
            [change] = recipient["history"]
            assert (change["source"], change["code"], change["scope"]) == (
                "provider",
                "21610",
                "all",
            )
            assert change["message_id"] == first["id"]
            second = send(api, "sms")
            assert second["error"]["code"] == "recipient_opted_out"  # type: ignore[index]
            assert twilio.calls == 1


def test_meta_marketing_signals_block_marketing_only_and_reach_subscribers(
    backend_url: str,
) -> None:
    with FakeWhatsAppCloud() as meta:
        drivers = {
            "whatsapp_driver": "whatsapp_cloud",
            "whatsapp_phone_id": WHATSAPP_PHONE_ID,
            "whatsapp_token": WHATSAPP_TOKEN,
            "whatsapp_api_base": meta.url,
        }
        with api_with(backend_url, **drivers) as api:
            service = api.service
            received: list[LifecycleEvent] = []
            subscription = service.subscribe(LifecycleEvent, received.append, name="consent")
            meta.answer(meta_error(131050, "Unable to deliver message", status=400))
            promo = send(api, "whatsapp", category="marketing")
            assert promo["status"] == "failed"
            consent = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()
            assert consent["consent"]["whatsapp"] == {"all": "unknown", "marketing": "opted_out"}
            assert send(api, "whatsapp", category="marketing")["error"] == {
                "code": "recipient_opted_out",
                "message": "the recipient opted out of messages on this channel",
            }
            assert meta.calls == 1
            assert send(api, "whatsapp")["status"] == "sent"  # transactional goes on
            assert meta.calls == 2

            raw = user_preferences("resume")
            hook = api.post(
                "/conversa/webhooks/whatsapp_cloud",
                content=raw,
                headers=meta_request(APP_SECRET, raw),
            )
            assert hook.status_code == 200
            assert send(api, "whatsapp", category="marketing")["status"] == "sent"
            raw = user_preferences("stop")
            for _ in range(2):  # Meta's retry records nothing new
                api.post(
                    "/conversa/webhooks/whatsapp_cloud",
                    content=raw,
                    headers=meta_request(APP_SECRET, raw),
                )
            history = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()["history"]
            assert [(h["type"], h["scope"], h["code"]) for h in history] == [
                ("opted_out", "marketing", "131050"),
                ("opted_in", "marketing", "user_preferences"),
                ("opted_out", "marketing", "user_preferences"),
            ]

            runner = SubscriberRunner(subscription, service.feed, service.subscriber_store)
            while runner.run_once():
                pass
            changes = [e for e in received if isinstance(e, RecipientEvent)]
            assert [type(e) for e in changes] == [
                RecipientOptedOut,
                RecipientOptedIn,
                RecipientOptedOut,
            ]
            assert all(
                (e.number, e.channel, e.scope, e.source)
                == (CONTACT, "whatsapp", "marketing", "provider")
                for e in changes
            )
            frames = [(name, data) for name, data in stream(api) if name.startswith("recipient.")]
            assert [name for name, _ in frames] == [
                "recipient.opted_out",
                "recipient.opted_in",
                "recipient.opted_out",
            ]
            assert frames[0][1]["number"] == CONTACT
            assert frames[0][1]["code"] == "131050"
            assert frames[0][1]["message_id"] == promo["id"]


def test_meta_131050_in_a_failed_status_opts_the_recipient_out_of_marketing(
    backend_url: str,
) -> None:
    with FakeWhatsAppCloud() as meta:
        drivers = {
            "whatsapp_driver": "whatsapp_cloud",
            "whatsapp_phone_id": WHATSAPP_PHONE_ID,
            "whatsapp_token": WHATSAPP_TOKEN,
            "whatsapp_api_base": meta.url,
        }
        with api_with(backend_url, **drivers) as api:
            promo = send(api, "whatsapp", category="marketing")
            assert promo["status"] == "sent"
            status = {
                "id": promo["provider_message_id"],
                "status": "failed",
                "timestamp": "1749416400",
                "recipient_id": CONTACT[1:],
                "biz_opaque_callback_data": promo["id"],
                "errors": [{"code": 131050, "title": "Unable to deliver message"}],
            }
            document = {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "9",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {"messaging_product": "whatsapp", "statuses": [status]},
                            }
                        ],
                    }
                ],
            }
            raw = json.dumps(document).encode()
            hook = api.post(
                "/conversa/webhooks/whatsapp_cloud",
                content=raw,
                headers=meta_request(APP_SECRET, raw),
            )
            assert hook.status_code == 200, hook.text
            recipient = api.get(f"/conversa/recipients/{CONTACT}", headers=api.auth).json()
            assert recipient["consent"]["whatsapp"]["marketing"] == "opted_out"
            [change] = recipient["history"]
            assert (change["source"], change["code"], change["message_id"]) == (
                "provider",
                "131050",
                promo["id"],
            )
            assert send(api, "whatsapp", category="marketing")["status"] == "failed"
            assert meta.calls == 1
