"""VonageDriver against httpx.MockTransport: the exact request, the parts, each error class."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.vonage.driver import VonageConfig, VonageDriver
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Template
from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber

API = "https://rest.vonage.test"
MESSAGE_ID = UUID("00000000-0000-4000-8000-00000000000b")
TO = PhoneNumber.parse("+447700900000")
CONFIG = VonageConfig(
    api_key="abcd1234",
    api_secret=SecretStr("vonage-api-secret-1"),
    sms_from="AcmeInc",
    api_base=API,
    webhook_base_url="https://hooks.example.com",
)


def outbound(text: str = "Your code is 8351", channel: Channel = Channel.SMS) -> OutboundMessage:
    return OutboundMessage(MESSAGE_ID, channel, TO, None, Body(text))


def driver_answering(
    answer: Callable[[httpx.Request], httpx.Response], config: VonageConfig = CONFIG
) -> tuple[VonageDriver, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return VonageDriver(config, httpx.Client(transport=httpx.MockTransport(handler))), seen


def parts(*statuses: str, **extra: str) -> httpx.Response:
    entries = [
        {
            "to": "447700900000",
            "message-id": f"0A00000{i}",
            "status": status,
            "remaining-balance": "3.14",
            "message-price": "0.0333",
            "network": "23410",
            "client-ref": str(MESSAGE_ID),
            **({"error-text": extra["text"]} if status != "0" and "text" in extra else {}),
        }
        for i, status in enumerate(statuses)
    ]
    return httpx.Response(200, json={"message-count": str(len(entries)), "messages": entries})


def test_the_request_is_the_documented_form() -> None:
    driver, seen = driver_answering(lambda _: parts("0"))
    result = driver.send(outbound())
    assert result.ok and result.provider_message_id == "0A000000"
    assert result.parts == ("0A000000",)
    (request,) = seen
    assert request.method == "POST" and str(request.url) == f"{API}/sms/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "api_key": "abcd1234",
        "api_secret": "vonage-api-secret-1",
        "from": "AcmeInc",
        "to": "447700900000",
        "text": "Your code is 8351",
        "type": "text",
        "client-ref": str(MESSAGE_ID),
        "callback": f"https://hooks.example.com/conversa/webhooks/vonage?message_id={MESSAGE_ID}",
    }
    # Redacted: no recipient, no balance.
    assert result.response == {
        "message-count": "1",
        "messages": [
            {
                "message-id": "0A000000",
                "status": "0",
                "message-price": "0.0333",
                "network": "23410",
                "client-ref": str(MESSAGE_ID),
            }
        ],
    }


def test_text_outside_gsm_goes_as_unicode_and_no_callback_without_a_base_url() -> None:
    driver, seen = driver_answering(lambda _: parts("0"), replace(CONFIG, webhook_base_url=None))
    assert driver.send(outbound("Ваш код 8351 ✓")).ok
    form = parse_qs(seen[0].content.decode())
    assert form["type"] == ["unicode"] and "callback" not in form


def test_a_long_message_has_every_part_id() -> None:
    driver, _ = driver_answering(lambda _: parts("0", "0", "0"))
    result = driver.send(outbound("x" * 400))
    assert result.ok
    assert result.provider_message_id == "0A000000"
    assert result.parts == ("0A000000", "0A000001", "0A000002")


@pytest.mark.parametrize(
    ("status", "transient", "reroutable"),
    [
        ("1", True, False),
        ("5", True, False),
        ("10", True, False),
        ("2", False, False),
        ("4", False, True),
        ("6", False, False),
        ("7", False, False),
        ("9", False, True),
        ("15", False, True),
        ("29", False, False),
        ("99", False, False),
    ],
)
def test_a_refused_part_is_classified_from_the_spec_errors(
    status: str, transient: bool, reroutable: bool
) -> None:
    driver, _ = driver_answering(lambda _: parts(status, text="Refused for 447700900000"))
    result = driver.send(outbound())
    assert not result.ok and result.error is not None
    assert result.error.code == f"vonage_{status}"
    assert result.error.transient is transient
    assert result.error.reroutable is reroutable
    assert "447700900000" not in result.error.message  # the number is masked


def test_a_partly_accepted_message_is_not_tried_again() -> None:
    driver, _ = driver_answering(lambda _: parts("0", "1"))
    result = driver.send(outbound("x" * 400))
    assert result.error is not None and result.error.code == "vonage_1"
    assert not result.error.transient
    assert "some parts were accepted" in result.error.message


def test_http_errors_timeouts_and_odd_answers() -> None:
    cases: dict[str, tuple[Callable[[httpx.Request], httpx.Response], str, bool]] = {
        "503": (lambda _: httpx.Response(503, text="<html>down</html>"), "vonage_http_503", True),
        "401": (lambda _: httpx.Response(401, text="no"), "vonage_http_401", False),
        "no messages": (
            lambda _: httpx.Response(200, json={"message-count": "0"}),
            "vonage_unexpected_response",
            False,
        ),
        "not json": (
            lambda _: httpx.Response(200, text="ok"),
            "vonage_unexpected_response",
            False,
        ),
        "no id": (
            lambda _: httpx.Response(200, content=json.dumps({"messages": [{"status": "0"}]})),
            "vonage_unexpected_response",
            False,
        ),
    }
    for case, (answer, code, transient) in cases.items():
        driver, _ = driver_answering(answer)
        result = driver.send(outbound())
        assert result.error is not None, case
        assert (result.error.code, result.error.transient) == (code, transient), case

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    driver, _ = driver_answering(timeout)
    result = driver.send(outbound())
    assert result.error is not None and result.error.code == "vonage_timeout"
    assert result.error.transient


def test_availability_and_templates() -> None:
    driver, seen = driver_answering(lambda _: parts("0"), replace(CONFIG, api_secret=None))
    assert driver.unavailable_reason(Channel.WHATSAPP) is not None
    reason = driver.unavailable_reason(Channel.SMS)
    assert reason is not None and "CONVERSA_VONAGE_API_SECRET" in reason
    result = driver.send(outbound())
    assert result.error is not None and result.error.code == "driver_unavailable"
    assert seen == []
    template = OutboundMessage(MESSAGE_ID, Channel.SMS, TO, None, Template("order_shipped", ()))
    with pytest.raises(InvalidRequest):
        driver.validate(template)


def test_the_result_names_the_sender_it_went_out_from() -> None:
    driver, _ = driver_answering(lambda _: parts("0"))
    assert driver.send(outbound()).sender == "AcmeInc"  # an alphanumeric sender id
    numbered, _ = driver_answering(lambda _: parts("0"), replace(CONFIG, sms_from="15550001111"))
    assert numbered.send(outbound()).sender == "+15550001111"  # as inbound's "to" names it
    refusing, _ = driver_answering(lambda _: parts("2", text="Missing to"))
    assert refusing.send(outbound()).sender is None
