"""A scripted run of the server, and its whole log: no secret, no full phone number and no
message body, whatever the server did (sends on both channels through the providers, a
failed send, signed and refused webhooks, events posted to a URL with a token in it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import Server, running_server
from tests.fakes.providers import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    Answer,
    FakeProvider,
    FakeTwilio,
    FakeWhatsAppCloud,
    Received,
    twilio_error,
)

PUBLIC = "https://hooks.example.com"
APP_SECRET = "meta-app-secret-" + "5" * 16
EVENTS_SECRET = "events-signing-secret-" + "3" * 12
URL_TOKEN = "url-query-token-" + "8" * 16
SMS_TO = "+14155550101"
WHATSAPP_TO = "+14155550102"
FAILED_TO = "+14155550103"
BODIES = ("sms body 7c1f9a", "whatsapp body 2be80d", "failing body 91d3c4")


class Receiver(FakeProvider):
    """The application's endpoint behind ``CONVERSA_EVENTS_URL``: takes every event."""

    def handle(self, received: Received) -> Answer:  # noqa: ARG002 - takes them all
        return Answer(204)


def send(server: Server, channel: str, to: str, body: str) -> dict[str, object]:
    with server.client() as client:
        response = client.post(
            "/conversa/messages", json={"channel": channel, "to": to, "body": body}
        )
    assert response.status_code == 201, response.text
    message: dict[str, object] = response.json()
    return message


def twilio_report(server: Server, message: dict[str, object], *, token: str) -> int:
    path = f"/conversa/webhooks/twilio?message_id={message['id']}"
    params = {
        "AccountSid": TWILIO_SID,
        "From": "+15550006666",
        "To": SMS_TO,
        "MessageSid": str(message["provider_message_id"]),
        "MessageStatus": "delivered",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return httpx.post(
        server.base_url + path,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    ).status_code


def meta_report(server: Server, message: dict[str, object], *, secret: str) -> int:
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": WHATSAPP_PHONE_ID,
                                },
                                "statuses": [
                                    {
                                        "id": message["provider_message_id"],
                                        "status": "delivered",
                                        "timestamp": str(int(time.time())),
                                        "recipient_id": WHATSAPP_TO.lstrip("+"),
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{server.base_url}/conversa/webhooks/whatsapp_cloud",
        content=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
    ).status_code


@pytest.mark.slow
@pytest.mark.postgres
def test_the_server_log_holds_no_secret_number_or_body(postgres_url: str, tmp_path: Path) -> None:
    with (
        FakeTwilio() as twilio,
        FakeWhatsAppCloud() as meta,
        Receiver() as receiver,
        running_server(
            postgres_url,
            tmp_path,
            log_level="INFO",
            sms_driver="twilio",
            whatsapp_driver="whatsapp_cloud",
            twilio_sid=TWILIO_SID,
            twilio_token=TWILIO_TOKEN,
            twilio_sms_from="+15550006666",
            twilio_api_base=twilio.url,
            whatsapp_phone_id=WHATSAPP_PHONE_ID,
            whatsapp_token=WHATSAPP_TOKEN,
            whatsapp_api_base=meta.url,
            whatsapp_app_secret=APP_SECRET,
            webhook_base_url=PUBLIC,
            events_url=f"{receiver.url}/conversa-events?token={URL_TOKEN}",
            events_secret=EVENTS_SECRET,
        ) as server,
    ):
        sms = send(server, "sms", SMS_TO, BODIES[0])
        whatsapp = send(server, "whatsapp", WHATSAPP_TO, BODIES[1])
        assert (sms["status"], whatsapp["status"]) == ("sent", "sent")
        twilio.answer(twilio_error(21211))  # its message quotes the number, as Twilio's does
        failed = send(server, "sms", FAILED_TO, BODIES[2])
        assert failed["status"] == "failed"

        assert twilio_report(server, sms, token=TWILIO_TOKEN) == 200
        assert meta_report(server, whatsapp, secret=APP_SECRET) == 200
        assert twilio_report(server, sms, token="not-" + TWILIO_TOKEN) == 403
        assert meta_report(server, whatsapp, secret="not-" + APP_SECRET) == 403

        # sent, sent, failed, delivered, delivered: each posted to the events URL.
        deadline = time.monotonic() + 15
        while receiver.calls < 5:
            assert time.monotonic() < deadline, f"{receiver.calls} events posted"
            time.sleep(0.05)
        assert all(r.query["token"] == [URL_TOKEN] for r in receiver.requests)
        api_token = server.token

    log = server.output()
    assert "conversa.access" in log and "queued message_id=" in log  # the log was captured
    secrets = {
        "API token": api_token,
        "Twilio auth token": TWILIO_TOKEN,
        "Meta access token": WHATSAPP_TOKEN,
        "Meta app secret": APP_SECRET,
        "events secret": EVENTS_SECRET,
        "token in the events URL": URL_TOKEN,
    }
    for what, secret in secrets.items():
        assert secret not in log, what
    for number in (SMS_TO, WHATSAPP_TO, FAILED_TO):
        assert number.lstrip("+") not in log, number  # with or without its +
        assert number.lstrip("+")[1:] not in log, number  # national digits
    for body in BODIES:
        assert body not in log, body
