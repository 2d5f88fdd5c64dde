"""TwilioDriver against httpx.MockTransport: the exact request, the answer, each error class."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.adapters.providers.twilio import (
    TwilioConfig,
    TwilioDriver,
    classify_error,
    redact_response,
)
from conversa.app.ports import OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template
from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN

API = "https://api.twilio.test"
MESSAGE_ID = UUID("00000000-0000-4000-8000-00000000000a")
TO = PhoneNumber.parse("+15551234567")
SMS_FROM = "+15557654321"
CONTENT_SID = "HX" + "abcdef0123456789" * 2
MESSAGING_SERVICE = "MG" + "0123456789abcdef" * 2
SID = "SM" + "0f" * 16
TEXT = "Your code is 8351"
TEMPLATES = TemplateCatalog.parse(
    f"""
[order_shipped]
twilio = {{ content_sid = "{CONTENT_SID}" }}
[meta_only]
whatsapp_cloud = {{ name = "meta_only", language = "en" }}
"""
)
CONFIG = TwilioConfig(
    account_sid=TWILIO_SID,
    auth_token=SecretStr(TWILIO_TOKEN),
    sms_from=SMS_FROM,
    whatsapp_from="whatsapp:+15550001111",
    api_base=API,
    webhook_base_url="https://hooks.example.com",
)
#: The spec's ``create`` example (a 201 answer), with our numbers and text.
CREATED = {
    "account_sid": TWILIO_SID,
    "api_version": "2010-04-01",
    "body": TEXT,
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": SMS_FROM,
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": None,
    "messaging_service_sid": None,
    "sid": SID,
    "status": "queued",
    "subresource_uris": {"media": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{SID}/Media.json"},
    "to": TO.e164,
    "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{SID}.json",
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers with ``answer``."""

    def __init__(self, answer: Handler | httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer if answer is not None else httpx.Response(201, json=CREATED)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.answer, httpx.Response):
            return self.answer
        return self.answer(request)

    @property
    def form(self) -> dict[str, list[str]]:
        (request,) = self.requests
        return parse_qs(request.content.decode(), keep_blank_values=True)


def driver_with(recorder: Recorder, config: TwilioConfig = CONFIG) -> TwilioDriver:
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    return TwilioDriver(config, client, TEMPLATES)


def outbound(
    content: Content | None = None, channel: Channel = Channel.SMS, sender: str | None = None
) -> OutboundMessage:
    return OutboundMessage(
        message_id=MESSAGE_ID,
        channel=channel,
        to=TO,
        sender=sender,
        content=Body(TEXT) if content is None else content,
    )


def single(form: dict[str, list[str]]) -> dict[str, str]:
    assert all(len(values) == 1 for values in form.values()), form
    return {name: values[0] for name, values in form.items()}


# The request


def test_an_sms_is_one_form_post_with_basic_auth() -> None:
    recorder = Recorder()
    result = driver_with(recorder).send(outbound())

    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{API}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    expected_auth = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert single(recorder.form) == {
        "To": "+15551234567",
        "From": SMS_FROM,
        "Body": TEXT,
        "StatusCallback": (
            f"https://hooks.example.com/conversa/webhooks/twilio?message_id={MESSAGE_ID}"
        ),
    }
    assert result.ok
    assert result.provider_message_id == SID
    assert result.error is None


def test_without_a_webhook_base_url_there_is_no_status_callback() -> None:
    recorder = Recorder()
    assert driver_with(recorder, replace(CONFIG, webhook_base_url=None)).send(outbound()).ok
    assert "StatusCallback" not in recorder.form
    assert set(recorder.form) == {"To", "From", "Body"}


@pytest.mark.parametrize("configured", ["whatsapp:+15550001111", "+15550001111"])
def test_whatsapp_addresses_carry_the_prefix_once(configured: str) -> None:
    recorder = Recorder()
    driver = driver_with(recorder, replace(CONFIG, whatsapp_from=configured))
    assert driver.send(outbound(channel=Channel.WHATSAPP)).ok
    form = single(recorder.form)
    assert form["To"] == "whatsapp:+15551234567"
    assert form["From"] == "whatsapp:+15550001111"
    assert form["Body"] == TEXT


def test_a_template_is_content_sid_and_variables_without_body() -> None:
    recorder = Recorder()
    content = Template("order_shipped", ("Ana", "1Z999", 'quote " and ünïcode'))
    assert driver_with(recorder).send(outbound(content, Channel.WHATSAPP)).ok
    form = single(recorder.form)
    assert "Body" not in form
    assert form["ContentSid"] == CONTENT_SID
    # One form field holding a JSON string, keyed "1", "2", ... in order.
    assert json.loads(form["ContentVariables"]) == {
        "1": "Ana",
        "2": "1Z999",
        "3": 'quote " and ünïcode',
    }
    assert form["ContentVariables"].startswith('{"1":"Ana","2":"1Z999",')
    assert set(form) == {"To", "From", "ContentSid", "ContentVariables", "StatusCallback"}


def test_a_template_without_variables_sends_no_content_variables() -> None:
    recorder = Recorder()
    assert driver_with(recorder).send(outbound(Template("order_shipped"))).ok
    form = single(recorder.form)
    assert form["ContentSid"] == CONTENT_SID
    assert "ContentVariables" not in form
    assert "Body" not in form


def test_a_messaging_service_sender_is_sent_as_messaging_service_sid() -> None:
    recorder = Recorder()
    assert driver_with(recorder, replace(CONFIG, sms_from=MESSAGING_SERVICE)).send(outbound()).ok
    form = single(recorder.form)
    assert form["MessagingServiceSid"] == MESSAGING_SERVICE
    assert "From" not in form


def test_the_messages_own_sender_replaces_the_configured_one() -> None:
    recorder = Recorder()
    assert driver_with(recorder).send(outbound(sender="+15559990000")).ok
    assert single(recorder.form)["From"] == "+15559990000"


def test_an_unknown_template_fails_without_a_request() -> None:
    recorder = Recorder()
    driver = driver_with(recorder)
    for name in ("no_such_template", "meta_only"):  # unknown; known but not for twilio
        result = driver.send(outbound(Template(name)))
        assert not result.ok
        assert result.error is not None
        assert result.error.code == "unknown_template"
        assert name in result.error.message
        assert result.error.transient is False
        with pytest.raises(UnknownTemplate) as raised:
            driver.validate(outbound(Template(name)))
        assert isinstance(raised.value, InvalidRequest)
        assert raised.value.field == "template.name"
    assert recorder.requests == []
    driver.validate(outbound(Template("order_shipped")))  # known: no error
    driver.validate(outbound())  # a body needs no template


# The answer


def test_success_keeps_a_redacted_response_by_default() -> None:
    result = driver_with(Recorder()).send(outbound())
    assert result.response is not None
    assert result.response["sid"] == SID
    assert result.response["status"] == "queued"
    assert {"to", "from", "body"}.isdisjoint(result.response)
    assert_free_of(result.response, TO.e164, SMS_FROM, TEXT)


def test_without_redaction_the_whole_response_is_kept() -> None:
    config = replace(CONFIG, redact_response=False)
    result = driver_with(Recorder(), config).send(outbound())
    assert result.response == CREATED


def test_without_redaction_but_without_stored_bodies_the_body_is_dropped() -> None:
    config = replace(CONFIG, redact_response=False, store_body=False)
    result = driver_with(Recorder(), config).send(outbound())
    assert result.response is not None
    assert "body" not in result.response
    assert_free_of(result.response, TEXT)
    assert result.response["to"] == TO.e164  # only the body goes
    assert result.response["sid"] == SID


def test_redact_response_keeps_identifiers_and_drops_personal_fields() -> None:
    payload = {
        **CREATED,
        "error_message": f"The 'To' number {TO.e164} is not a valid phone number.",
        "a_field_twilio_adds_later": TO.e164,
    }
    redacted = redact_response(payload)
    assert redacted == {
        "account_sid": TWILIO_SID,
        "api_version": "2010-04-01",
        "date_created": CREATED["date_created"],
        "date_sent": CREATED["date_sent"],
        "date_updated": CREATED["date_updated"],
        "direction": "outbound-api",
        "error_code": None,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": None,
        "sid": SID,
        "status": "queued",
        "subresource_uris": CREATED["subresource_uris"],
        "uri": CREATED["uri"],
    }
    assert_free_of(redacted, TO.e164, SMS_FROM, TEXT)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(201, json={"status": "queued"}),
        httpx.Response(201, text="<html>created</html>"),
        httpx.Response(200, json=[]),
    ],
)
def test_a_success_without_a_sid_is_a_permanent_unexpected_response(
    answer: httpx.Response,
) -> None:
    result = driver_with(Recorder(answer)).send(outbound())
    assert not result.ok
    assert result.error is not None
    assert result.error.code == "twilio_unexpected_response"
    assert result.error.transient is False


def twilio_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


# (HTTP status, answer body, expected DriverError.code, transient)
ERRORS = [
    (400, twilio_body(21211, "The 'To' number +15551234567 is not a valid phone number.", 400),
     "twilio_21211", False),
    (400, twilio_body(21408, "Permission to send an SMS has not been enabled for the region "
                      "indicated by the 'To' number: +15551234567.", 400), "twilio_21408", False),
    (400, twilio_body(21610, "Attempt to send to unsubscribed recipient", 400),
     "twilio_21610", False),
    (400, twilio_body(21614, "'To' number is not a valid mobile number", 400),
     "twilio_21614", False),
    (400, twilio_body(21612, "The 'To' phone number is not currently reachable via SMS.", 400),
     "twilio_21612", False),
    (400, twilio_body(21606, "The 'From' phone number provided is not a valid message-capable "
                      "Twilio phone number for this destination/account.", 400),
     "twilio_21606", False),
    (401, twilio_body(20003, "Authenticate", 401), "twilio_20003", False),
    (404, twilio_body(20404, "The requested resource was not found", 404),
     "twilio_20404", False),
    (429, twilio_body(20429, "Too Many Requests", 429), "twilio_20429", True),
    (500, twilio_body(20500, "Internal Server Error", 500), "twilio_20500", True),
    (503, twilio_body(20503, "Service Unavailable", 503), "twilio_20503", True),
    # The code decides, not the status: a throttling code under an odd status is transient,
    # and a known-permanent code is permanent even under a 5xx.
    (400, twilio_body(20429, "Too Many Requests", 400), "twilio_20429", True),
    (500, twilio_body(21211, "The 'To' number is not a valid phone number.", 500),
     "twilio_21211", False),
    # An unknown code falls back on the status.
    (400, twilio_body(29999, "Something new", 400), "twilio_29999", False),
    (502, twilio_body(29999, "Something new", 502), "twilio_29999", True),
    # RFC 9457 problem details.
    (429, {"type": "https://www.twilio.com/docs/errors/20429", "title": "Too Many Requests",
           "status": 429, "code": 20429, "detail": "Too many requests.",
           "instance": "/Messages"}, "twilio_20429", True),
    (400, {"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid To",
           "status": 400, "code": "21211", "detail": "Invalid 'To' phone number."},
     "twilio_21211", False),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "code", "transient"), ERRORS)
def test_documented_errors_are_classified_on_twilios_code(
    status: int, body: dict[str, Any], code: str, transient: bool
) -> None:
    result = driver_with(Recorder(httpx.Response(status, json=body))).send(outbound())
    assert not result.ok
    assert result.provider_message_id is None
    assert result.error is not None
    assert result.error.code == code
    assert result.error.transient is transient
    assert result.error.message  # the provider's own words
    assert TO.e164 not in result.error.message


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (503, "twilio_http_503", True),
        (502, "twilio_http_502", True),
        (500, "twilio_http_500", True),
        (429, "twilio_http_429", True),
        (400, "twilio_http_400", False),
        (403, "twilio_http_403", False),
    ],
)
def test_answers_that_are_not_json_fall_back_on_the_http_status(
    status: int, code: str, transient: bool
) -> None:
    answer = httpx.Response(status, text="<html><h1>Bad Gateway</h1></html>")
    result = driver_with(Recorder(answer)).send(outbound())
    assert result.error is not None
    assert result.error.code == code
    assert result.error.transient is transient
    assert result.error.message == f"Twilio answered HTTP {status}"


def test_the_provider_message_is_kept_without_the_recipient_number() -> None:
    body = twilio_body(21211, "The 'To' number +15551234567 is not a valid phone number.", 400)
    result = driver_with(Recorder(httpx.Response(400, json=body))).send(outbound())
    assert result.error is not None
    assert result.error.message == f"The 'To' number {TO.masked()} is not a valid phone number."
    assert "5551234567" not in result.error.message


def test_the_auth_token_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = twilio_body(20003, f"Authenticate with {TWILIO_TOKEN} failed", 401)
    result = driver_with(Recorder(httpx.Response(401, json=body))).send(outbound())
    assert result.error is not None
    assert result.error.code == "twilio_20003"
    assert TWILIO_TOKEN not in result.error.message
    assert TWILIO_TOKEN not in caplog.text
    assert TWILIO_TOKEN not in repr(CONFIG)
    assert caplog.records  # the failure was logged, with the message id
    assert str(MESSAGE_ID) in caplog.text
    assert TO.e164 not in caplog.text


def test_classify_error_reads_message_detail_or_title() -> None:
    assert classify_error(400, {"code": 21211, "message": "m"}).message == "m"
    assert classify_error(400, {"code": 21211, "detail": "d", "title": "t"}).message == "d"
    assert classify_error(400, {"code": 21211, "title": "t"}).message == "t"
    assert classify_error(400, None).message == "Twilio answered HTTP 400"
    assert classify_error(400, {"code": True}).code == "twilio_http_400"  # not a code


# No answer at all


def raising(error: type[httpx.RequestError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ReadTimeout, "twilio_timeout"),
        (httpx.WriteTimeout, "twilio_timeout"),
        (httpx.ConnectTimeout, "twilio_unreachable"),
        (httpx.PoolTimeout, "twilio_unreachable"),
        (httpx.ConnectError, "twilio_unreachable"),
        (httpx.RemoteProtocolError, "twilio_connection_error"),
        (httpx.ReadError, "twilio_connection_error"),
    ],
)
def test_timeouts_and_connection_errors_are_transient(
    error: type[httpx.RequestError], code: str
) -> None:
    result = driver_with(Recorder(raising(error))).send(outbound())
    assert not result.ok
    assert result.error is not None
    assert result.error.code == code
    assert result.error.transient is True
    assert "simulated" not in result.error.message  # httpx's text may name the URL
    assert error.__name__ in result.error.message


# Availability


@pytest.mark.parametrize(
    ("changes", "channel", "missing"),
    [
        ({"account_sid": None}, Channel.SMS, ["CONVERSA_TWILIO_SID"]),
        ({"auth_token": None}, Channel.SMS, ["CONVERSA_TWILIO_TOKEN"]),
        ({"auth_token": SecretStr("")}, Channel.WHATSAPP, ["CONVERSA_TWILIO_TOKEN"]),
        ({"sms_from": None}, Channel.SMS, ["CONVERSA_TWILIO_SMS_FROM"]),
        ({"whatsapp_from": None}, Channel.WHATSAPP, ["CONVERSA_TWILIO_WHATSAPP_FROM"]),
        (
            {"account_sid": None, "auth_token": None, "sms_from": None},
            Channel.SMS,
            ["CONVERSA_TWILIO_SID", "CONVERSA_TWILIO_TOKEN", "CONVERSA_TWILIO_SMS_FROM"],
        ),
    ],
)
def test_unavailable_reason_names_each_missing_variable(
    changes: dict[str, Any], channel: Channel, missing: list[str]
) -> None:
    recorder = Recorder()
    driver = driver_with(recorder, replace(CONFIG, **changes))
    reason = driver.unavailable_reason(channel)
    assert reason is not None
    for variable in missing:
        assert variable in reason
    others = {
        "CONVERSA_TWILIO_SID",
        "CONVERSA_TWILIO_TOKEN",
        "CONVERSA_TWILIO_SMS_FROM",
        "CONVERSA_TWILIO_WHATSAPP_FROM",
    } - set(missing)
    assert not any(variable in reason for variable in others)
    result = driver.send(outbound(channel=channel))
    assert result.error is not None
    assert result.error.code == "driver_unavailable"
    assert recorder.requests == []


def test_each_channel_needs_only_its_own_sender() -> None:
    sms_only = driver_with(Recorder(), replace(CONFIG, whatsapp_from=None))
    assert sms_only.unavailable_reason(Channel.SMS) is None
    assert sms_only.unavailable_reason(Channel.WHATSAPP) is not None
    whatsapp_only = driver_with(Recorder(), replace(CONFIG, sms_from=None))
    assert whatsapp_only.unavailable_reason(Channel.WHATSAPP) is None
    assert whatsapp_only.unavailable_reason(Channel.SMS) is not None


def test_config_from_settings() -> None:
    settings = Settings.from_environ(
        {
            "CONVERSA_TWILIO_SID": TWILIO_SID,
            "CONVERSA_TWILIO_TOKEN": TWILIO_TOKEN,
            "CONVERSA_TWILIO_SMS_FROM": SMS_FROM,
            "CONVERSA_TWILIO_API_BASE": "http://127.0.0.1:9/",
            "CONVERSA_WEBHOOK_BASE_URL": "https://hooks.example.com/",
            "CONVERSA_REDACT_PROVIDER_RESPONSE": "false",
            "CONVERSA_STORE_BODY": "false",
        }
    )
    config = TwilioConfig.from_settings(settings)
    assert config.account_sid == TWILIO_SID
    assert config.auth_token is not None
    assert config.auth_token.get_secret_value() == TWILIO_TOKEN
    assert config.sms_from == SMS_FROM
    assert config.whatsapp_from is None
    assert config.api_base == "http://127.0.0.1:9"
    assert config.webhook_base_url == "https://hooks.example.com"
    assert config.redact_response is False
    assert config.store_body is False


def assert_free_of(value: object, *needles: str) -> None:
    """No string anywhere inside ``value`` contains any of ``needles``."""
    text = json.dumps(value)
    for needle in needles:
        assert needle not in text
        assert needle.removeprefix("+") not in text


def test_an_error_code_in_unusual_digits_is_not_a_crash() -> None:
    from conversa.adapters.providers.common import positive_int

    assert positive_int("21211") == 21211
    assert positive_int("²") is None  # a digit to str.isdigit, not to int()


# The sender it used


def test_the_result_names_the_number_the_message_went_out_from() -> None:
    sms = driver_with(Recorder()).send(outbound())
    assert sms.sender == SMS_FROM
    # WhatsApp: the answer's "from" is an address; the sender is its number.
    whatsapp_answer = {**CREATED, "from": "whatsapp:+15550001111"}
    whatsapp = driver_with(Recorder(httpx.Response(201, json=whatsapp_answer)))
    assert whatsapp.send(outbound(channel=Channel.WHATSAPP)).sender == "+15550001111"
    # A Messaging Service: the number Twilio picked, when its answer says; else unknown.
    service = replace(CONFIG, sms_from=MESSAGING_SERVICE)
    picked = Recorder(httpx.Response(201, json={**CREATED, "from": "+15550002222"}))
    assert driver_with(picked, service).send(outbound()).sender == "+15550002222"
    unpicked = Recorder(httpx.Response(201, json={**CREATED, "from": None}))
    assert driver_with(unpicked, service).send(outbound()).sender is None
    # A refusal names none.
    refused = Recorder(httpx.Response(400, json=twilio_body(21211, "Invalid 'To'", 400)))
    assert driver_with(refused).send(outbound()).sender is None
