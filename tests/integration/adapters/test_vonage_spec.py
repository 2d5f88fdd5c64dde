"""The Vonage driver's request, as a local server receives it from the production HTTP client,
validated against Vonage's OpenAPI document (shared/specs/vonage_sms_v1.0.10.yml); the fake's
answers and the test receipts validated against the same document.

That copy camel-cases the names Vonage really uses hyphenated (``client-ref``,
``message-id``, ``err-code``...; shared/specs/README.md): names are camel-cased here before
validation, and nothing else is changed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.vonage.driver import VonageConfig, VonageDriver
from conversa.app.bootstrap import provider_http_client
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.phone import PhoneNumber
from tests.fakes import provider_specs as specs
from tests.fakes.providers import running
from tests.fakes.regional import VONAGE_KEY, VONAGE_SECRET, FakeVonage, vonage_error
from tests.unit.adapters.test_vonage_webhook import receipt

SPEC = "vonage_sms_v1.0.10.yml"
pytestmark = pytest.mark.skipif(
    not (specs.specs_dir() / SPEC).is_file(),
    reason=f"the Vonage OpenAPI document is not in {specs.specs_dir()}",
)


def camel(name: str) -> str:
    return re.sub(r"-(\w)", lambda m: m.group(1).upper(), name)


def camelised(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(k): camelised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelised(v) for v in value]
    return value


def schema(name: str) -> dict[str, Any]:
    document = specs.load(SPEC)
    flattened: dict[str, Any] = specs.flatten({"$ref": f"#/components/schemas/{name}"}, document)
    return flattened


@pytest.fixture(scope="module")
def vonage() -> Iterator[FakeVonage]:
    yield from running(FakeVonage())


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with provider_http_client() as client:
        yield client


def driver(vonage: FakeVonage, client: httpx.Client) -> VonageDriver:
    config = VonageConfig(
        api_key=VONAGE_KEY,
        api_secret=SecretStr(VONAGE_SECRET),
        sms_from="AcmeInc",
        api_base=vonage.url,
        webhook_base_url="https://hooks.example.com",
    )
    return VonageDriver(config, client)


@pytest.mark.parametrize("text", ["Your code is 8351", "Ваш код 8351", "x" * 500])
def test_the_request_conforms_to_send_an_sms(
    vonage: FakeVonage, client: httpx.Client, text: str
) -> None:
    message = OutboundMessage(
        uuid4(), Channel.SMS, PhoneNumber.parse("+447700900000"), None, Body(text)
    )
    result = driver(vonage, client).send(message)
    assert result.ok, result.error
    received = vonage.requests[-1]
    assert (received.method, received.path) == ("POST", "/sms/json")
    document = specs.load(SPEC)
    operation = document["paths"]["/json"]["post"]
    assert received.content_type in operation["requestBody"]["content"]
    # Stricter than the document: a misspelt field would be ignored by Vonage.
    new_message = {**schema("NewMessage"), "additionalProperties": False}
    assert specs.errors(new_message, camelised(received.form)) == []
    assert received.form["client-ref"] == str(message.message_id)
    assert result.parts == tuple(vonage.sent[-1]["parts"])


def test_the_check_refuses_what_vonage_would() -> None:
    new_message = {**schema("NewMessage"), "additionalProperties": False}
    good = {
        "api_key": VONAGE_KEY,
        "api_secret": VONAGE_SECRET,
        "from": "AcmeInc",
        "to": "447700900000",
        "text": "hi",
    }
    assert specs.errors(new_message, good) == []
    for bad in (
        {**good, "to": "12345"},  # too short for a number
        {k: v for k, v in good.items() if k != "api_key"},
        {**good, "api_key": "short"},
        {**good, "client_ref": "x"},  # misspelt
    ):
        assert specs.errors(new_message, bad) != []


def test_the_fake_answers_and_receipts_are_as_documented(
    vonage: FakeVonage, client: httpx.Client
) -> None:
    form = {
        "api_key": VONAGE_KEY,
        "api_secret": VONAGE_SECRET,
        "from": "AcmeInc",
        "to": "447700900000",
        "text": "y" * 400,
        "client-ref": "ref",
    }
    answer = client.post(vonage.url + "/sms/json", data=form).json()
    assert len(answer["messages"]) == 3
    assert specs.errors(schema("SMS"), camelised(answer)) == []
    vonage.answer(vonage_error(1, "Throttled"))
    refused = client.post(vonage.url + "/sms/json", data=form).json()
    assert specs.errors(schema("Error"), camelised(refused)) == []
    receipt_schema = {**schema("DeliveryReceipt"), "additionalProperties": False}
    assert specs.errors(receipt_schema, camelised({**receipt(), "sig": "00" * 32})) == []
