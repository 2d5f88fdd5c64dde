"""AfricasTalkingDriver against httpx.MockTransport, and its delivery reports' parsing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.africastalking.driver import (
    SANDBOX_API_BASE,
    AfricasTalkingConfig,
    AfricasTalkingDriver,
)
from conversa.adapters.providers.africastalking.webhook import (
    parse_delivery_report,
    verify_url_token,
)
from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.phone import PhoneNumber
from conversa.domain.status import Status
from tests.fakes.regional import AT_API_KEY, AT_USERNAME

API = "https://api.africastalking.test"
MESSAGE_ID = UUID("00000000-0000-4000-8000-00000000000c")
TO = PhoneNumber.parse("+254711000000")
CONFIG = AfricasTalkingConfig(
    username=AT_USERNAME, api_key=SecretStr(AT_API_KEY), sender="CONVERSA", api_base=API
)


def outbound() -> OutboundMessage:
    return OutboundMessage(MESSAGE_ID, Channel.SMS, TO, None, Body("Your code is 8351"))


def driver_with(
    answer: Callable[[httpx.Request], httpx.Response], config: AfricasTalkingConfig = CONFIG
) -> tuple[AfricasTalkingDriver, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return AfricasTalkingDriver(config, httpx.Client(transport=httpx.MockTransport(handler))), seen


def accepted(request: httpx.Request) -> httpx.Response:
    to = parse_qs(request.content.decode())["to"][0]
    recipient = {
        "statusCode": 101,
        "number": to,
        "status": "Success",
        "cost": "KES 0.8000",
        "messageId": "ATXid_1",
    }
    data = {"Message": "Sent to 1/1 Total Cost: KES 0.8000", "Recipients": [recipient]}
    return httpx.Response(201, json={"SMSMessageData": data})


def refused(code: int, word: str) -> Callable[[httpx.Request], httpx.Response]:
    recipient = {"statusCode": code, "number": "+254711000000", "status": word, "cost": "0"}
    data = {"Message": "Sent to 0/1 Total Cost: 0", "Recipients": [recipient]}
    return lambda _: httpx.Response(201, json={"SMSMessageData": data})


def test_the_request_and_an_accepted_answer() -> None:
    driver, seen = driver_with(accepted)
    result = driver.send(outbound())
    assert result.ok
    assert result.provider_message_id == "ATXid_1"
    (request,) = seen
    assert str(request.url) == f"{API}/version1/messaging"
    assert request.headers["apikey"] == AT_API_KEY
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "username": AT_USERNAME,
        "to": "+254711000000",
        "message": "Your code is 8351",
        "from": "CONVERSA",
    }
    assert result.response is not None
    assert "number" not in result.response["Recipients"][0]


@pytest.mark.parametrize(
    ("code", "word", "transient", "reroutable"),
    [
        (401, "RiskHold", False, True),
        (402, "InvalidSenderId", False, True),
        (403, "InvalidPhoneNumber", False, False),
        (405, "InsufficientBalance", False, True),
        (406, "UserInBlacklist", False, False),
        (407, "CouldNotRoute", False, True),
        (500, "InternalServerError", True, False),
        (502, "RejectedByGateway", True, False),
    ],
)
def test_status_codes_are_classified(
    code: int, word: str, transient: bool, reroutable: bool
) -> None:
    driver, _ = driver_with(refused(code, word))
    result = driver.send(outbound())
    assert result.error is not None
    assert result.error.code == f"africastalking_{code}"
    assert (result.error.transient, result.error.reroutable) == (transient, reroutable)


def test_bad_credentials_and_outages() -> None:
    driver, _ = driver_with(lambda _: httpx.Response(401, text="invalid authentication"))
    result = driver.send(outbound())
    assert result.error is not None and result.error.code == "africastalking_http_401"
    assert not result.error.transient and result.error.reroutable
    driver, _ = driver_with(lambda _: httpx.Response(503, text="down"))
    result = driver.send(outbound())
    assert result.error is not None and result.error.transient


def test_the_sandbox_username_uses_the_sandbox() -> None:
    config = replace(CONFIG, username="sandbox", api_base="https://api.africastalking.com")
    assert config.base_url == SANDBOX_API_BASE
    assert replace(CONFIG, username="sandbox").base_url == API  # an explicit base wins


def test_the_url_token_fails_closed() -> None:
    verify_url_token(expected="s3cret", received="s3cret")
    for expected, received in [(None, "s3cret"), ("s3cret", None), ("s3cret", "guess")]:
        with pytest.raises(SignatureError):
            verify_url_token(expected=expected, received=received)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Sent", Status.SENT),
        ("Submitted", Status.SENT),
        ("Buffered", Status.SENT),
        ("Success", Status.DELIVERED),
        ("Rejected", Status.FAILED),
        ("Failed", Status.UNDELIVERED),
        ("AbsentSubscriber", Status.UNDELIVERED),
        ("Expired", Status.UNDELIVERED),
    ],
)
def test_delivery_reports_map_onto_the_lattice(word: str, status: Status) -> None:
    form = [
        ("id", "ATXid_1"),
        ("status", word),
        ("phoneNumber", "+254711000000"),
        ("networkCode", "63902"),
        ("retryCount", "0"),
    ]
    if status.is_final:
        form.append(("failureReason", "UserInBlackList"))
    report = parse_delivery_report(form).report
    assert report is not None
    assert (report.status, report.provider_message_id, report.message_id) == (
        status,
        "ATXid_1",
        None,
    )
    if status.is_final:
        assert report.error_code == "africastalking_UserInBlackList"


def test_unknown_statuses_inbound_messages_and_malformed_reports() -> None:
    assert parse_delivery_report([("id", "ATXid_1"), ("status", "Later")]).report is None
    inbound = parse_delivery_report(
        [("from", "+254711000000"), ("to", "12345"), ("text", "hi"), ("id", "x")]
    )
    assert inbound.inbound
    for bad in ([("status", "Success")], [("foo", "bar")]):
        with pytest.raises(MalformedWebhook):
            parse_delivery_report(bad)


def test_the_result_names_the_sender_it_went_out_from() -> None:
    driver, _ = driver_with(accepted)
    assert driver.send(outbound()).sender == "CONVERSA"
    # Without a sender, Africa's Talking picks its default, which we cannot name.
    default, _ = driver_with(accepted, replace(CONFIG, sender=None))
    assert default.send(outbound()).sender is None
