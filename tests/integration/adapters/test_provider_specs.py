"""The drivers' send requests, as a local server receives them from the production HTTP
client, validated against the providers' own OpenAPI documents (shared/specs); and the fake
servers' answers validated against the same documents, so the fakes stay faithful."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from conversa.adapters.providers.templates import TemplateCatalog
from conversa.adapters.providers.twilio import TwilioConfig, TwilioDriver
from conversa.adapters.providers.whatsapp_cloud import WhatsAppCloudConfig, WhatsAppCloudDriver
from conversa.app.bootstrap import provider_http_client
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template
from conversa.domain.phone import PhoneNumber
from tests.fakes import provider_specs as specs
from tests.fakes.providers import (
    META_RATE_LIMIT_EXAMPLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_PHONE_ID,
    WHATSAPP_TOKEN,
    FakeTwilio,
    FakeWhatsAppCloud,
    Received,
    meta_error,
    running,
)

pytestmark = pytest.mark.skipif(
    not (specs.specs_dir() / specs.TWILIO_SPEC).is_file()
    or not (specs.specs_dir() / specs.META_SPEC).is_file(),
    reason=f"the provider OpenAPI documents are not in {specs.specs_dir()} "
    "(shared/specs beside the repository)",
)

TO = PhoneNumber.parse("+16505551234")
CONTENT_SID = "HX" + "0123456789abcdef" * 2
MESSAGING_SERVICE = "MG" + "0123456789abcdef" * 2
TEMPLATES = TemplateCatalog.parse(
    f"""
[order_shipped]
twilio = {{ content_sid = "{CONTENT_SID}" }}
whatsapp_cloud = {{ name = "order_shipped", language = "en_US" }}
"""
)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with provider_http_client() as client:
        yield client


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeWhatsAppCloud]:
    yield from running(FakeWhatsAppCloud())


def outbound(content: Content, channel: Channel) -> OutboundMessage:
    return OutboundMessage(uuid4(), channel, TO, None, content)


def send_twilio(
    twilio: FakeTwilio, client: httpx.Client, message: OutboundMessage, sms_from: str
) -> Received:
    config = TwilioConfig(
        account_sid=TWILIO_SID,
        auth_token=SecretStr(TWILIO_TOKEN),
        sms_from=sms_from,
        whatsapp_from="whatsapp:+15550001111",
        api_base=twilio.url,
        webhook_base_url="https://hooks.example.com",
    )
    before = twilio.calls
    result = TwilioDriver(config, client, TEMPLATES).send(message)
    assert result.ok, result.error
    assert twilio.calls == before + 1
    return twilio.requests[-1]


def send_meta(meta: FakeWhatsAppCloud, client: httpx.Client, message: OutboundMessage) -> Received:
    config = WhatsAppCloudConfig(
        phone_id=WHATSAPP_PHONE_ID, token=SecretStr(WHATSAPP_TOKEN), api_base=meta.url
    )
    before = meta.calls
    result = WhatsAppCloudDriver(config, client, TEMPLATES).send(message)
    assert result.ok, result.error
    assert meta.calls == before + 1
    return meta.requests[-1]


# Checking a request against an operation


def operation_problems(document: Mapping[str, Any], path: str, received: Received) -> list[str]:
    """Method, path parameters, security and header parameters of the operation."""
    problems = []
    if received.method != "POST":
        problems.append(f"method {received.method}, the document has POST")
    values = specs.match_path(path, received.path)
    if values is None:
        return [*problems, f"path {received.path} does not have the shape {path}"]
    parameters = specs.operation_parameters(document, path)
    for name, segment in values.items():
        schema = specs.flatten(parameters[name]["schema"], document, nullable=True)
        problems += [f"path {name}: {e}" for e in specs.errors(schema, segment)]
    for name, parameter in parameters.items():
        if parameter["in"] != "header":
            continue
        header = received.headers.get(name.lower())
        if header is None:
            if parameter.get("required"):
                problems.append(f"header {name} is required")
            continue
        if name.lower() == "content-type":
            header = received.content_type
        schema = specs.flatten(parameter["schema"], document)
        problems += [f"header {name}: {e}" for e in specs.errors(schema, header)]
    op = specs.operation(document, path)
    for requirement in op.get("security", document.get("security", [])):
        for scheme_name in requirement:
            scheme = document["components"]["securitySchemes"][scheme_name]
            assert scheme["type"] == "http"
            if scheme["scheme"] == "basic" and received.basic_auth is None:
                problems.append(f"security {scheme_name}: no Basic credentials")
            if scheme["scheme"] == "bearer" and not received.bearer:
                problems.append(f"security {scheme_name}: no Bearer token")
    if received.content_type not in op["requestBody"]["content"]:
        problems.append(f"content type {received.content_type} is not one the document takes")
    return problems


def twilio_problems(received: Received) -> list[str]:
    document = specs.load(specs.TWILIO_SPEC)
    problems = operation_problems(document, specs.TWILIO_MESSAGES, received)
    op = specs.operation(document, specs.TWILIO_MESSAGES)
    schema = specs.flatten(
        op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"],
        document,
        nullable=True,
    )
    # Stricter than the document, which allows any field: Twilio ignores a field it does not
    # know, so a misspelt "Statuscallback" would silently lose every delivery report.
    schema = {**schema, "additionalProperties": False}
    form = received.form
    # Form values are strings; every field the drivers send is a string in the document.
    problems += specs.errors(schema, form)
    # x-twilio.conditional: one of each group must be present (snake_case names there).
    fields = {_snake(name): name for name in schema["properties"]}
    for group in op["x-twilio"]["conditional"]:
        present = [fields[snake] for snake in group if fields[snake] in form]
        if not present:
            problems.append(f"one of {[fields[s] for s in group]} is required")
    return problems


def meta_problems(received: Received) -> list[str]:
    document = specs.load(specs.META_SPEC)
    problems = operation_problems(document, specs.META_MESSAGES, received)
    op = specs.operation(document, specs.META_MESSAGES)
    schema = specs.flatten(op["requestBody"]["content"]["application/json"]["schema"], document)
    return problems + specs.errors(schema, received.json)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Twilio


@pytest.mark.parametrize(
    ("content", "channel", "sms_from"),
    [
        (Body("Your order has shipped"), Channel.SMS, "+15557654321"),
        (Body("Your order has shipped"), Channel.SMS, MESSAGING_SERVICE),
        (Body("¡Hola! 👋"), Channel.WHATSAPP, "+15557654321"),
        (Template("order_shipped", ("Ana", "1Z999")), Channel.WHATSAPP, "+15557654321"),
        (Template("order_shipped"), Channel.SMS, "+15557654321"),
    ],
    ids=["sms", "sms-messaging-service", "whatsapp-body", "whatsapp-template", "sms-template"],
)
def test_twilio_requests_conform_to_the_create_message_operation(
    twilio: FakeTwilio,
    client: httpx.Client,
    content: Content,
    channel: Channel,
    sms_from: str,
) -> None:
    received = send_twilio(twilio, client, outbound(content, channel), sms_from)
    assert twilio_problems(received) == []


def test_the_twilio_check_refuses_what_twilio_would(
    twilio: FakeTwilio, client: httpx.Client
) -> None:
    """The validator is not a rubber stamp: broken variants of a real request fail it."""
    received = send_twilio(
        twilio, client, outbound(Template("order_shipped"), Channel.SMS), "+15557654321"
    )
    form = received.form

    def variant(**changes: str | None) -> Received:
        changed = {k: v for k, v in {**form, **changes}.items() if v is not None}
        body = httpx.QueryParams(changed).__str__().encode()
        return Received(received.method, received.path, {}, received.headers, body)

    assert any("ContentSid" in p for p in twilio_problems(variant(ContentSid="HX123")))
    assert any("To" in p for p in twilio_problems(variant(To=None)))
    assert any("Statuscallback" in p for p in twilio_problems(variant(Statuscallback="x")))
    assert any("From" in p for p in twilio_problems(variant(From=None)))
    assert any("Body" in p for p in twilio_problems(variant(ContentSid=None)))
    assert twilio_problems(variant(StatusCallback="https://my_host.example.com/x")) != []
    wrong_account = Received(
        "POST", "/2010-04-01/Accounts/XX123/Messages.json", {}, received.headers, received.body
    )
    assert any("AccountSid" in p for p in twilio_problems(wrong_account))


def test_the_fake_twilio_answers_with_the_documented_message_resource() -> None:
    document = specs.load(specs.TWILIO_SPEC)
    answer = specs.operation(document, specs.TWILIO_MESSAGES)["responses"]["201"]
    schema = specs.flatten(answer["content"]["application/json"]["schema"], document, nullable=True)
    fake = FakeTwilio()
    try:
        for form in (
            {"To": "+16505551234", "From": "+15557654321", "Body": "hi"},
            {"To": "whatsapp:+16505551234", "MessagingServiceSid": MESSAGING_SERVICE},
        ):
            resource = fake.message_resource(form)
            assert specs.errors(schema, resource) == []
            assert set(resource) <= set(schema["properties"])  # nothing invented
    finally:
        fake.stop()


# Meta WhatsApp Cloud API


def test_meta_text_message_conforms_except_for_the_documented_quirk(
    meta: FakeWhatsAppCloud, client: httpx.Client
) -> None:
    received = send_meta(meta, client, outbound(Body("¡Hola! 👋"), Channel.WHATSAPP))
    problems = meta_problems(received)
    # biz_opaque_callback_data is how a status webhook finds its message. Meta documents it
    # for every message type, but this document lists it only for some, and TextMessage says
    # additionalProperties: false (shared/specs/README.md). So the one field is taken out
    # before validating, and everything else must conform.
    assert problems == [
        "<root>: Additional properties are not allowed ('biz_opaque_callback_data' was unexpected)"
    ]
    document = specs.load(specs.META_SPEC)
    op = specs.operation(document, specs.META_MESSAGES)
    schema = specs.flatten(op["requestBody"]["content"]["application/json"]["schema"], document)
    body = dict(received.json)
    assert body.pop("biz_opaque_callback_data") is not None
    assert specs.errors(schema, body) == []
    assert operation_problems(document, specs.META_MESSAGES, received) == []


@pytest.mark.parametrize(
    "content",
    [Template("order_shipped", ("Ana", "1Z999")), Template("order_shipped")],
    ids=["with-variables", "without-variables"],
)
def test_meta_template_messages_conform(
    meta: FakeWhatsAppCloud, client: httpx.Client, content: Template
) -> None:
    received = send_meta(meta, client, outbound(content, Channel.WHATSAPP))
    assert "biz_opaque_callback_data" in received.json  # kept: templates allow it
    assert meta_problems(received) == []


def test_the_meta_check_refuses_what_meta_would(
    meta: FakeWhatsAppCloud, client: httpx.Client
) -> None:
    received = send_meta(
        meta, client, outbound(Template("order_shipped", ("Ana",)), Channel.WHATSAPP)
    )
    document = specs.load(specs.META_SPEC)
    op = specs.operation(document, specs.META_MESSAGES)
    schema = specs.flatten(op["requestBody"]["content"]["application/json"]["schema"], document)
    good: dict[str, Any] = received.json
    assert specs.errors(schema, good) == []

    no_policy = {**good, "template": {**good["template"], "language": {"code": "en_US"}}}
    assert specs.errors(schema, no_policy) != []
    bad_parameter = {
        **good,
        "template": {
            **good["template"],
            "components": [{"type": "body", "parameters": [{"type": "text"}]}],
        },
    }
    assert specs.errors(schema, bad_parameter) != []  # reached through two discriminators
    no_recipient_type = {k: v for k, v in good.items() if k != "recipient_type"}
    assert specs.errors(schema, no_recipient_type) != []
    assert specs.errors(schema, {**good, "type": "telegram"}) != []


def test_the_fake_meta_answers_as_documented(meta: FakeWhatsAppCloud, client: httpx.Client) -> None:
    document = specs.load(specs.META_SPEC)
    op = specs.operation(document, specs.META_MESSAGES)
    success = specs.flatten(
        op["responses"]["200"]["content"]["application/json"]["schema"], document
    )
    error = specs.flatten({"$ref": "#/components/schemas/GraphAPIError"}, document)
    answer = client.post(
        f"{meta.url}/v23.0/{WHATSAPP_PHONE_ID}/messages",
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO.e164,
            "type": "text",
            "text": {"body": "hi"},
        },
        headers={"Authorization": f"Bearer {WHATSAPP_TOKEN}"},
    )
    assert answer.status_code == 200
    assert specs.errors(success, answer.json()) == []
    assert specs.errors(error, META_RATE_LIMIT_EXAMPLE) == []
    for code in (130429, 131026, 190):
        assert specs.errors(error, _json(meta_error(code).body)) == []


def _json(raw: bytes) -> object:
    return httpx.Response(200, content=raw).json()


META_PHONE_NUMBER = "/{Version}/{Phone-Number-ID}"


def test_the_display_number_lookup_and_the_fakes_answer_conform(client: httpx.Client) -> None:
    """The whatsapp_cloud driver's read of its phone number node (getPhoneNumberById), as
    the fake receives it, and the fake's answer, against Meta's document."""
    document = specs.load(specs.META_SPEC)
    parameters = specs.operation_parameters(document, META_PHONE_NUMBER, "get")
    answer = specs.operation(document, META_PHONE_NUMBER, "get")["responses"]["200"]
    schema = specs.flatten(answer["content"]["application/json"]["schema"], document)
    with FakeWhatsAppCloud() as meta:
        config = WhatsAppCloudConfig(
            phone_id=WHATSAPP_PHONE_ID,
            token=SecretStr(WHATSAPP_TOKEN),
            api_base=meta.url,
            look_up_sender=True,
        )
        result = WhatsAppCloudDriver(config, client, TEMPLATES).send(
            outbound(Body("hi"), Channel.WHATSAPP)
        )
        assert result.ok and result.sender == "+15550001111"
        [lookup] = meta.lookups
        assert lookup.method == "GET" and lookup.bearer == WHATSAPP_TOKEN
        values = specs.match_path(META_PHONE_NUMBER, lookup.path)
        assert values is not None
        for name, value in [*values.items(), *((k, v[0]) for k, v in lookup.query.items())]:
            parameter_schema = specs.flatten(parameters[name]["schema"], document)
            assert specs.errors(parameter_schema, value) == [], name
        # The fake's answers: to this lookup, and with the default fields.
        for fields in ("display_phone_number", None):
            query = {"fields": [fields]} if fields else {}
            received = Received("GET", lookup.path, query, lookup.headers, b"")
            node = meta.phone_number(received)
            assert node.status == 200
            assert specs.errors(schema, json.loads(node.body)) == []
        refused = meta.phone_number(Received("GET", lookup.path, {}, {}, b""))
        assert refused.status == 401
