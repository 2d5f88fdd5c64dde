"""WhatsAppCloudDriver against httpx.MockTransport: the exact request, the answer, each
error class (on Meta's ``error.code``, not the HTTP status)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.adapters.providers.whatsapp_cloud import (
    WhatsAppCloudConfig,
    WhatsAppCloudDriver,
    classify_error,
    redact_response,
)
from conversa.app.ports import OutboundMessage
from conversa.app.settings import Settings
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template
from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber
from tests.fakes.providers import (
    META_RATE_LIMIT_EXAMPLE,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
)

API = "https://graph.test"
MESSAGE_ID = UUID("00000000-0000-4000-8000-00000000000b")
TO = PhoneNumber.parse("+16505551234")
TEXT = "Welcome to Acme! Your code is 8351"
WAMID = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
TEMPLATES = TemplateCatalog.parse(
    """
[order_shipped]
whatsapp_cloud = { name = "order_shipped_v2", language = "en_US" }
[twilio_only]
twilio = { content_sid = "HX0123456789abcdef0123456789abcdef" }
"""
)
CONFIG = WhatsAppCloudConfig(
    phone_id=WHATSAPP_PHONE_ID,
    token=SecretStr(WHATSAPP_TOKEN),
    api_base=API,
    api_version="v23.0",
)
#: The documented 200 answer (providers.md 2.1).
ACCEPTED = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": TO.e164, "wa_id": TO.e164.removeprefix("+")}],
    "messages": [{"id": WAMID, "message_status": "accepted"}],
}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, answer: Handler | httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer if answer is not None else httpx.Response(200, json=ACCEPTED)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.answer, httpx.Response):
            return self.answer
        return self.answer(request)

    @property
    def json(self) -> Any:
        (request,) = self.requests
        return json.loads(request.content)


def driver_with(recorder: Recorder, config: WhatsAppCloudConfig = CONFIG) -> WhatsAppCloudDriver:
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    return WhatsAppCloudDriver(config, client, TEMPLATES)


def outbound(
    content: Content | None = None, channel: Channel = Channel.WHATSAPP
) -> OutboundMessage:
    return OutboundMessage(
        message_id=MESSAGE_ID,
        channel=channel,
        to=TO,
        sender=None,
        content=Body(TEXT) if content is None else content,
    )


# The request


def test_a_text_message_is_one_json_post_with_a_bearer_token() -> None:
    recorder = Recorder()
    result = driver_with(recorder).send(outbound())

    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{API}/v23.0/{WHATSAPP_PHONE_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {WHATSAPP_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert recorder.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": TEXT},
        "biz_opaque_callback_data": str(MESSAGE_ID),
    }
    assert result.ok
    assert result.provider_message_id == WAMID


def test_a_template_names_meta_template_language_and_body_parameters() -> None:
    recorder = Recorder()
    content = Template("order_shipped", ("Ana", "1Z999"))
    assert driver_with(recorder).send(outbound(content)).ok
    assert recorder.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "template",
        "template": {
            "name": "order_shipped_v2",
            "language": {"code": "en_US", "policy": "deterministic"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ana"},
                        {"type": "text", "text": "1Z999"},
                    ],
                }
            ],
        },
        "biz_opaque_callback_data": str(MESSAGE_ID),
    }


def test_a_template_without_variables_has_no_components() -> None:
    recorder = Recorder()
    assert driver_with(recorder).send(outbound(Template("order_shipped"))).ok
    template = recorder.json["template"]
    assert template == {
        "name": "order_shipped_v2",
        "language": {"code": "en_US", "policy": "deterministic"},
    }
    assert recorder.json["biz_opaque_callback_data"] == str(MESSAGE_ID)


def test_an_unknown_template_fails_without_a_request() -> None:
    recorder = Recorder()
    driver = driver_with(recorder)
    for name in ("no_such_template", "twilio_only"):
        result = driver.send(outbound(Template(name, ("x",))))
        assert result.error is not None
        assert result.error.code == "unknown_template"
        assert result.error.transient is False
        with pytest.raises(UnknownTemplate) as raised:
            driver.validate(outbound(Template(name)))
        assert isinstance(raised.value, InvalidRequest)
        assert raised.value.field == "template.name"
    assert recorder.requests == []


# The answer


def test_success_keeps_a_redacted_response_by_default() -> None:
    result = driver_with(Recorder()).send(outbound())
    assert result.response == {
        "messaging_product": "whatsapp",
        "messages": [{"id": WAMID, "message_status": "accepted"}],
    }


def test_without_redaction_the_whole_response_is_kept() -> None:
    result = driver_with(Recorder(), replace(CONFIG, redact_response=False)).send(outbound())
    assert result.response == ACCEPTED


def test_redact_response_drops_contacts_and_unknown_fields() -> None:
    payload = {
        **ACCEPTED,
        "messages": [{"id": WAMID, "message_status": "accepted", "recipient": TO.e164}],
        "something_new": {"wa_id": "16505551234"},
    }
    redacted = redact_response(payload)
    assert redacted == {
        "messaging_product": "whatsapp",
        "messages": [{"id": WAMID, "message_status": "accepted"}],
    }
    assert "6505551234" not in json.dumps(redacted)


def test_a_text_answer_without_message_status_is_fine() -> None:
    answer = httpx.Response(200, json={**ACCEPTED, "messages": [{"id": WAMID}]})
    result = driver_with(Recorder(answer)).send(outbound())
    assert result.provider_message_id == WAMID
    assert result.response == {"messaging_product": "whatsapp", "messages": [{"id": WAMID}]}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"messaging_product": "whatsapp", "messages": []}),
        httpx.Response(200, json={"messaging_product": "whatsapp"}),
        httpx.Response(200, text="OK"),
    ],
)
def test_a_success_without_a_message_id_is_a_permanent_unexpected_response(
    answer: httpx.Response,
) -> None:
    result = driver_with(Recorder(answer)).send(outbound())
    assert result.error is not None
    assert result.error.code == "whatsapp_cloud_unexpected_response"
    assert result.error.transient is False


def meta_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            **extra,
        }
    }


TRANSIENT = [130429, 131056, 4, 80007, 131000, 2, 131016, 131057, 133004, 1]
PERMANENT = [0, 3, 10, 100, 190, 200, 131008, 131009, 131021, 131026, 131047, 131048,
             131050, 132000, 132001, 132015, 368]  # fmt: skip


@pytest.mark.parametrize("code", TRANSIENT)
def test_throttling_and_outages_are_transient_whatever_the_status(code: int) -> None:
    for status in (400, 500):  # Meta sends 130429 as HTTP 400
        answer = httpx.Response(status, json=meta_body(code, f"(#{code}) error"))
        result = driver_with(Recorder(answer)).send(outbound())
        assert result.error is not None
        assert result.error.code == f"whatsapp_cloud_{code}"
        assert result.error.transient is True
        assert result.error.message == f"(#{code}) error"


@pytest.mark.parametrize("code", PERMANENT)
def test_other_codes_are_permanent_whatever_the_status(code: int) -> None:
    for status in (400, 401, 500, 503):
        answer = httpx.Response(status, json=meta_body(code, f"(#{code}) error"))
        result = driver_with(Recorder(answer)).send(outbound())
        assert result.error is not None
        assert result.error.code == f"whatsapp_cloud_{code}"
        assert result.error.transient is False


def test_the_documented_rate_limit_example() -> None:
    answer = httpx.Response(400, json=META_RATE_LIMIT_EXAMPLE)
    result = driver_with(Recorder(answer)).send(outbound())
    assert result.error is not None
    assert result.error.code == "whatsapp_cloud_130429"
    assert result.error.transient is True
    assert result.error.message == (
        "(#130429) Rate limit hit: Cloud API message throughput has been reached."
    )


def test_is_transient_true_makes_an_unknown_code_transient() -> None:
    answer = httpx.Response(400, json=meta_body(999999, "new", is_transient=True))
    assert (error := driver_with(Recorder(answer)).send(outbound()).error) is not None
    assert error.transient is True
    answer = httpx.Response(400, json=meta_body(999999, "new", is_transient=False))
    assert (error := driver_with(Recorder(answer)).send(outbound()).error) is not None
    assert error.transient is False


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (500, "whatsapp_cloud_http_500", True),
        (502, "whatsapp_cloud_http_502", True),
        (503, "whatsapp_cloud_http_503", True),
        (429, "whatsapp_cloud_http_429", True),
        (400, "whatsapp_cloud_http_400", False),
        (404, "whatsapp_cloud_http_404", False),
    ],
)
def test_answers_without_a_code_fall_back_on_the_http_status(
    status: int, code: str, transient: bool
) -> None:
    for answer in (
        httpx.Response(status, text="<html>Service Unavailable</html>"),
        httpx.Response(status, json={"error": {"message": "no code here"}}),
    ):
        result = driver_with(Recorder(answer)).send(outbound())
        assert result.error is not None
        assert result.error.code == code
        assert result.error.transient is transient


def test_the_error_message_hides_the_recipient_and_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = httpx.Response(
        400,
        json=meta_body(
            131026,
            "(#131026) Message undeliverable",
            error_data={"details": f"16505551234 cannot receive it; token {WHATSAPP_TOKEN}"},
        ),
    )
    result = driver_with(Recorder(answer)).send(outbound())
    assert result.error is not None
    assert "6505551234" not in result.error.message
    assert TO.masked() in result.error.message
    assert WHATSAPP_TOKEN not in result.error.message
    assert WHATSAPP_TOKEN not in caplog.text
    assert "6505551234" not in caplog.text
    assert WHATSAPP_TOKEN not in repr(CONFIG)


def test_classify_error_reads_code_as_int_or_digits() -> None:
    assert classify_error(400, meta_body(130429, "x")).transient is True
    assert classify_error(400, {"error": {"code": "130429", "message": "x"}}).transient is True
    assert classify_error(400, {"error": "oops"}).code == "whatsapp_cloud_http_400"
    assert classify_error(503, []).code == "whatsapp_cloud_http_503"


# No answer at all


def raising(error: type[httpx.RequestError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ReadTimeout, "whatsapp_cloud_timeout"),
        (httpx.ConnectTimeout, "whatsapp_cloud_unreachable"),
        (httpx.ConnectError, "whatsapp_cloud_unreachable"),
        (httpx.RemoteProtocolError, "whatsapp_cloud_connection_error"),
    ],
)
def test_timeouts_and_connection_errors_are_transient(
    error: type[httpx.RequestError], code: str
) -> None:
    result = driver_with(Recorder(raising(error))).send(outbound())
    assert result.error is not None
    assert result.error.code == code
    assert result.error.transient is True


# Availability


def test_sms_is_not_served() -> None:
    recorder = Recorder()
    driver = driver_with(recorder)
    reason = driver.unavailable_reason(Channel.SMS)
    assert reason is not None
    assert "whatsapp" in reason
    assert driver.unavailable_reason(Channel.WHATSAPP) is None
    result = driver.send(outbound(channel=Channel.SMS))
    assert result.error is not None
    assert result.error.code == "driver_unavailable"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("changes", "missing", "present"),
    [
        ({"phone_id": None}, "CONVERSA_WHATSAPP_PHONE_ID", "CONVERSA_WHATSAPP_TOKEN"),
        ({"token": None}, "CONVERSA_WHATSAPP_TOKEN", "CONVERSA_WHATSAPP_PHONE_ID"),
        ({"token": SecretStr("")}, "CONVERSA_WHATSAPP_TOKEN", "CONVERSA_WHATSAPP_PHONE_ID"),
    ],
)
def test_unavailable_reason_names_the_missing_variable(
    changes: dict[str, Any], missing: str, present: str
) -> None:
    recorder = Recorder()
    driver = driver_with(recorder, replace(CONFIG, **changes))
    reason = driver.unavailable_reason(Channel.WHATSAPP)
    assert reason is not None
    assert missing in reason
    assert present not in reason
    assert driver.send(outbound()).error is not None
    assert recorder.requests == []


def test_config_from_settings() -> None:
    settings = Settings.from_environ(
        {
            "CONVERSA_WHATSAPP_PHONE_ID": WHATSAPP_PHONE_ID,
            "CONVERSA_WHATSAPP_TOKEN": WHATSAPP_TOKEN,
            "CONVERSA_WHATSAPP_API_BASE": "http://127.0.0.1:9/",
            "CONVERSA_WHATSAPP_API_VERSION": "v24.0",
        }
    )
    config = WhatsAppCloudConfig.from_settings(settings)
    assert config.phone_id == WHATSAPP_PHONE_ID
    assert config.token is not None
    assert config.token.get_secret_value() == WHATSAPP_TOKEN
    assert config.api_base == "http://127.0.0.1:9"
    assert config.api_version == "v24.0"
    assert config.redact_response is True
    driver = WhatsAppCloudDriver(config, httpx.Client(), TEMPLATES)
    try:
        assert driver.messages_url() == f"http://127.0.0.1:9/v24.0/{WHATSAPP_PHONE_ID}/messages"
    finally:
        driver.client.close()
