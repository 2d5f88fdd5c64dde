"""The Twilio and WhatsApp Cloud drivers against local fake provider servers on loopback
sockets, through the shared HTTP client that bootstrap builds, and through the service."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.log import LogDriver
from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.adapters.providers.twilio import TwilioConfig, TwilioDriver
from conversa.adapters.providers.whatsapp_cloud import WhatsAppCloudConfig, WhatsAppCloudDriver
from conversa.app.bootstrap import bootstrap, configured_drivers, migrate, provider_http_client
from conversa.app.ports import OutboundMessage
from conversa.app.settings import SettingsError
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template
from conversa.domain.message import Message
from conversa.domain.phone import PhoneNumber
from tests.fakes.providers import (
    META_RATE_LIMIT_EXAMPLE,
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    Answer,
    FakeTwilio,
    FakeWhatsAppCloud,
    meta_error,
    running,
    slow,
    twilio_error,
)
from tests.support import make_settings

TO = PhoneNumber.parse("+15551234567")
SMS_FROM = "+15557654321"
WHATSAPP_FROM = "whatsapp:+15550001111"
TEXT = "Your order 4711 has shipped"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
TEMPLATES_TOML = f"""
[order_shipped]
twilio = {{ content_sid = "{CONTENT_SID}" }}
whatsapp_cloud = {{ name = "order_shipped", language = "en_US" }}
"""
TEMPLATES = TemplateCatalog.parse(TEMPLATES_TOML)
HOOKS = "https://hooks.example.com"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def meta() -> Iterator[FakeWhatsAppCloud]:
    yield from running(FakeWhatsAppCloud())


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """The production client (timeouts, pool), as bootstrap builds it."""
    with provider_http_client() as client:
        yield client


@pytest.fixture
def impatient_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(0.3, connect=1.0)) as client:
        yield client


def twilio_driver(fake: FakeTwilio, client: httpx.Client, **changes: object) -> TwilioDriver:
    config = TwilioConfig(
        account_sid=TWILIO_SID,
        auth_token=SecretStr(str(changes.pop("token", TWILIO_TOKEN))),
        sms_from=SMS_FROM,
        whatsapp_from=WHATSAPP_FROM,
        api_base=fake.url,
        webhook_base_url=HOOKS,
    )
    return TwilioDriver(config, client, TEMPLATES)


def meta_driver(
    fake: FakeWhatsAppCloud, client: httpx.Client, token: str = WHATSAPP_TOKEN
) -> WhatsAppCloudDriver:
    config = WhatsAppCloudConfig(
        phone_id=WHATSAPP_PHONE_ID, token=SecretStr(token), api_base=fake.url, api_version="v23.0"
    )
    return WhatsAppCloudDriver(config, client, TEMPLATES)


def outbound(content: Content | None = None, channel: Channel = Channel.SMS) -> OutboundMessage:
    return OutboundMessage(uuid4(), channel, TO, None, Body(TEXT) if content is None else content)


# Twilio


def test_twilio_sms_reaches_the_server_as_documented(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    message = outbound()
    result = twilio_driver(twilio, client).send(message)

    assert twilio.calls == 1
    (received,) = twilio.requests
    assert received.method == "POST"
    assert received.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert received.query == {}
    assert received.basic_auth == (TWILIO_SID, TWILIO_TOKEN)
    assert received.content_type == "application/x-www-form-urlencoded"
    assert received.headers["accept"] == "application/json"
    assert received.headers["user-agent"].startswith("conversa/")
    assert received.form == {
        "To": TO.e164,
        "From": SMS_FROM,
        "Body": TEXT,
        "StatusCallback": f"{HOOKS}/conversa/webhooks/twilio?message_id={message.message_id}",
    }
    assert result.ok
    (created,) = twilio.sent
    assert result.provider_message_id == created["sid"]
    assert result.response is not None
    assert result.response["sid"] == created["sid"]
    assert {"to", "from", "body"}.isdisjoint(result.response)


def test_twilio_whatsapp_template_reaches_the_server_as_documented(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    message = outbound(Template("order_shipped", ("Ana", "1Z999")), Channel.WHATSAPP)
    result = twilio_driver(twilio, client).send(message)
    assert result.ok
    (received,) = twilio.requests
    form = received.form
    assert form["To"] == f"whatsapp:{TO.e164}"
    assert form["From"] == WHATSAPP_FROM
    assert form["ContentSid"] == CONTENT_SID
    assert json.loads(form["ContentVariables"]) == {"1": "Ana", "2": "1Z999"}
    assert "Body" not in form
    assert twilio.sent[0]["to"] == f"whatsapp:{TO.e164}"


def test_twilio_reuses_one_connection_for_several_sends(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    driver = twilio_driver(twilio, client)
    results = [driver.send(outbound()) for _ in range(5)]
    assert all(r.ok for r in results)
    assert len({r.provider_message_id for r in results}) == 5
    assert twilio.calls == 5


@pytest.mark.parametrize(
    ("code", "transient"),
    [(21211, False), (21408, False), (21610, False), (21614, False), (20429, True),
     (20500, True), (20503, True)],
)  # fmt: skip
def test_twilio_documented_errors_over_the_wire(
    twilio: FakeTwilio, client: httpx.Client, code: int, transient: bool
) -> None:
    twilio.answer(twilio_error(code))
    driver = twilio_driver(twilio, client)
    result = driver.send(outbound())
    assert result.error is not None
    assert result.error.code == f"twilio_{code}"
    assert result.error.transient is transient
    assert TO.e164 not in result.error.message
    # The script is used up: the next send succeeds.
    assert driver.send(outbound()).ok
    assert twilio.calls == 2


def test_twilio_error_messages_quoting_the_number_are_masked(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    twilio.answer(twilio_error(21211))
    result = twilio_driver(twilio, client).send(outbound())
    assert result.error is not None
    assert result.error.message == f"The 'To' number {TO.masked()} is not a valid phone number."


def test_twilio_html_503_is_transient(twilio: FakeTwilio, client: httpx.Client) -> None:
    twilio.always(SERVICE_UNAVAILABLE)
    result = twilio_driver(twilio, client).send(outbound())
    assert result.error is not None
    assert result.error.code == "twilio_http_503"
    assert result.error.transient is True


def test_twilio_wrong_token_is_permanent_and_not_echoed(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    result = twilio_driver(twilio, client, token="not-the-token").send(outbound())
    assert result.error is not None
    assert result.error.code == "twilio_20003"
    assert result.error.transient is False
    assert "not-the-token" not in result.error.message
    assert twilio.sent == []


def test_twilio_slow_answer_is_a_transient_timeout(
    twilio: FakeTwilio, impatient_client: httpx.Client
) -> None:
    twilio.answer(slow(5.0))
    started = time.monotonic()
    result = twilio_driver(twilio, impatient_client).send(outbound())
    assert time.monotonic() - started < 3.0
    assert result.error is not None
    assert result.error.code == "twilio_timeout"
    assert result.error.transient is True
    assert twilio.calls == 1  # the request did arrive: the message may have gone out


def test_nothing_listening_is_a_transient_unreachable(client: httpx.Client) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = TwilioConfig(
        account_sid=TWILIO_SID,
        auth_token=SecretStr(TWILIO_TOKEN),
        sms_from=SMS_FROM,
        api_base=f"http://127.0.0.1:{port}",
    )
    result = TwilioDriver(config, client, TEMPLATES).send(outbound())
    assert result.error is not None
    assert result.error.code == "twilio_unreachable"
    assert result.error.transient is True


def test_the_fake_can_be_scripted_and_reset(twilio: FakeTwilio, client: httpx.Client) -> None:
    driver = twilio_driver(twilio, client)
    twilio.answer(twilio_error(20429), SERVICE_UNAVAILABLE)
    twilio.always(twilio_error(21610))
    codes = [driver.send(outbound()).error for _ in range(4)]
    assert [e.code if e else None for e in codes] == [
        "twilio_20429",
        "twilio_http_503",
        "twilio_21610",
        "twilio_21610",
    ]
    assert twilio.calls == 4
    assert twilio.sent == []
    twilio.always(None)
    assert driver.send(outbound()).ok
    assert len(twilio.sent) == 1
    twilio.reset()
    assert twilio.calls == 0
    assert twilio.sent == []


# Meta WhatsApp Cloud API


def test_whatsapp_cloud_text_reaches_the_server_as_documented(
    meta: FakeWhatsAppCloud, client: httpx.Client
) -> None:
    message = outbound(channel=Channel.WHATSAPP)
    result = meta_driver(meta, client).send(message)

    (received,) = meta.requests
    assert received.method == "POST"
    assert received.path == f"/v23.0/{WHATSAPP_PHONE_ID}/messages"
    assert received.bearer == WHATSAPP_TOKEN
    assert received.content_type == "application/json"
    assert received.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO.e164,
        "type": "text",
        "text": {"preview_url": False, "body": TEXT},
        "biz_opaque_callback_data": str(message.message_id),
    }
    assert result.ok
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("wamid.")
    assert result.response == {
        "messaging_product": "whatsapp",
        "messages": [{"id": result.provider_message_id}],
    }


def test_whatsapp_cloud_template_reaches_the_server_as_documented(
    meta: FakeWhatsAppCloud, client: httpx.Client
) -> None:
    message = outbound(Template("order_shipped", ("Ana",)), Channel.WHATSAPP)
    result = meta_driver(meta, client).send(message)
    assert result.ok
    (body,) = meta.sent
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_shipped",
        "language": {"code": "en_US", "policy": "deterministic"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
    }
    assert body["biz_opaque_callback_data"] == str(message.message_id)
    assert result.response is not None
    assert result.response["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize(
    ("answer", "code", "transient"),
    [
        (Answer.json(400, META_RATE_LIMIT_EXAMPLE), "whatsapp_cloud_130429", True),
        (meta_error(131056), "whatsapp_cloud_131056", True),
        (meta_error(131000), "whatsapp_cloud_131000", True),
        (meta_error(133004, status=503), "whatsapp_cloud_133004", True),
        (meta_error(131026), "whatsapp_cloud_131026", False),
        (meta_error(131047), "whatsapp_cloud_131047", False),
        (meta_error(132001), "whatsapp_cloud_132001", False),
        (meta_error(100), "whatsapp_cloud_100", False),
        (SERVICE_UNAVAILABLE, "whatsapp_cloud_http_503", True),
    ],
)
def test_whatsapp_cloud_documented_errors_over_the_wire(
    meta: FakeWhatsAppCloud, client: httpx.Client, answer: Answer, code: str, transient: bool
) -> None:
    meta.answer(answer)
    driver = meta_driver(meta, client)
    result = driver.send(outbound(channel=Channel.WHATSAPP))
    assert result.error is not None
    assert result.error.code == code
    assert result.error.transient is transient
    assert driver.send(outbound(channel=Channel.WHATSAPP)).ok
    assert meta.calls == 2


def test_whatsapp_cloud_expired_token_is_permanent(
    meta: FakeWhatsAppCloud, client: httpx.Client
) -> None:
    result = meta_driver(meta, client, token="EAAexpired").send(outbound(channel=Channel.WHATSAPP))
    assert result.error is not None
    assert result.error.code == "whatsapp_cloud_190"
    assert result.error.transient is False
    assert "EAAexpired" not in result.error.message


def test_whatsapp_cloud_slow_answer_is_a_transient_timeout(
    meta: FakeWhatsAppCloud, impatient_client: httpx.Client
) -> None:
    meta.always(slow(5.0))
    result = meta_driver(meta, impatient_client).send(outbound(channel=Channel.WHATSAPP))
    assert result.error is not None
    assert result.error.code == "whatsapp_cloud_timeout"
    assert result.error.transient is True


# Wiring: configured_drivers and the service


def provider_env(twilio: FakeTwilio, meta: FakeWhatsAppCloud, **extra: str) -> dict[str, str]:
    return {
        "sms_driver": "twilio",
        "whatsapp_driver": "whatsapp_cloud",
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "twilio_sms_from": SMS_FROM,
        "twilio_api_base": twilio.url,
        "whatsapp_phone_id": WHATSAPP_PHONE_ID,
        "whatsapp_token": WHATSAPP_TOKEN,
        "whatsapp_api_base": meta.url,
        "webhook_base_url": HOOKS,
        **extra,
    }


def test_configured_drivers_share_one_client_that_close_closes(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'db.sqlite3'}", sms_driver="twilio", whatsapp_driver="twilio"
    )
    configured = configured_drivers(settings)
    sms, whatsapp = configured.drivers[Channel.SMS], configured.drivers[Channel.WHATSAPP]
    assert isinstance(sms, TwilioDriver)
    assert whatsapp is sms  # one driver serves both channels
    assert configured.client is not None
    assert sms.client is configured.client
    assert not configured.client.is_closed
    timeout = configured.client.timeout
    assert (timeout.connect, timeout.read) == (3.0, 10.0)
    configured.close()
    assert configured.client.is_closed

    mixed = configured_drivers(
        make_settings("sqlite:///x", sms_driver="twilio", whatsapp_driver="whatsapp_cloud")
    )
    try:
        twilio_driver_, meta_driver_ = mixed.drivers[Channel.SMS], mixed.drivers[Channel.WHATSAPP]
        assert isinstance(twilio_driver_, TwilioDriver)
        assert isinstance(meta_driver_, WhatsAppCloudDriver)
        assert twilio_driver_.client is meta_driver_.client is mixed.client
    finally:
        mixed.close()


def test_log_drivers_need_no_client() -> None:
    configured = configured_drivers(make_settings("sqlite:///x"))
    assert configured.client is None
    assert all(isinstance(d, LogDriver) for d in configured.drivers.values())
    configured.close()  # nothing to close, no error


def test_a_malformed_templates_file_stops_bootstrap(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text('[order_shipped]\ntwilio = { content_sid = "HX1" }\n', encoding="utf-8")
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite3'}", templates_file=str(path))
    with pytest.raises(SettingsError, match=r"^CONVERSA_TEMPLATES_FILE: "):
        bootstrap(settings)


def test_the_service_sends_through_the_fakes_and_closes_the_client(
    backend_url: str, tmp_path: Path, twilio: FakeTwilio, meta: FakeWhatsAppCloud
) -> None:
    templates = tmp_path / "templates.toml"
    templates.write_text(TEMPLATES_TOML, encoding="utf-8")
    settings = make_settings(
        backend_url, **provider_env(twilio, meta, templates_file=str(templates))
    )
    migrate(settings)
    with bootstrap(settings) as service:
        sms = service.send("sms", TO.e164, {"body": TEXT})
        whatsapp = service.send(
            "whatsapp", TO.e164, {"template": {"name": "order_shipped", "variables": ["Ana"]}}
        )
        assert sms.ok, sms.error
        assert whatsapp.ok, whatsapp.error
        assert sms.status == whatsapp.status == "sent"
        assert sms.provider_message_id == twilio.sent[0]["sid"]
        assert whatsapp.provider_message_id is not None
        assert whatsapp.provider_message_id.startswith("wamid.")
        # The ids travel with the sends, for the status reports to find their message.
        assert twilio.requests[0].form["StatusCallback"].endswith(f"message_id={sms.message_id}")
        assert meta.sent[0]["biz_opaque_callback_data"] == str(whatsapp.message_id)
        # The stored response is redacted (CONVERSA_REDACT_PROVIDER_RESPONSE defaults to true).
        stored = stored_response(service.app.repository.get(sms.message_id))
        assert stored["sid"] == sms.provider_message_id
        assert TO.e164 not in json.dumps(stored)
        assert TEXT not in json.dumps(stored)

        twilio.answer(twilio_error(21610))
        refused = service.send("sms", TO.e164, {"body": TEXT})
        assert not refused.ok
        assert refused.status == "failed"
        assert refused.error is not None
        assert refused.error["code"] == "twilio_21610"

        head = service.app.recorder.max_notification_id()
        with pytest.raises(UnknownTemplate) as refused_template:
            service.send("whatsapp", TO.e164, {"template": {"name": "nope"}})
        assert refused_template.value.field == "template.name"
        assert service.app.recorder.max_notification_id() == head  # nothing recorded
        assert meta.calls == 1  # and no request for an unknown template

        client = driver_client(service.drivers[Channel.SMS])
        assert client is driver_client(service.drivers[Channel.WHATSAPP])
        assert not client.is_closed
    assert client.is_closed


def test_an_unconfigured_twilio_records_driver_unavailable(backend_url: str) -> None:
    settings = make_settings(backend_url, sms_driver="twilio")
    migrate(settings)
    with bootstrap(settings) as service:
        result = service.send("sms", TO.e164, {"body": TEXT})
        assert result.status == "failed"
        assert result.error is not None
        assert result.error["code"] == "driver_unavailable"
        assert "CONVERSA_TWILIO_SID" in result.error["message"]
        assert "CONVERSA_TWILIO_SMS_FROM" in result.error["message"]


def stored_response(message: object) -> dict[str, object]:
    assert isinstance(message, Message)
    assert message.provider_response is not None
    return message.provider_response


def driver_client(driver: object) -> httpx.Client:
    assert isinstance(driver, TwilioDriver | WhatsAppCloudDriver)
    return driver.client
