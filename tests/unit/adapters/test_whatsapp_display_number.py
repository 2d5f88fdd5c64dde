"""The whatsapp_cloud driver names the number it sent from: the phone number id's display
number, looked up once on the Graph API (httpx.MockTransport here; the fake server's
answer is checked against Meta's spec in tests/integration/adapters/test_provider_specs.py).
A lookup that fails never fails a send, and is tried again later."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.templates import TemplateCatalog
from conversa.adapters.providers.whatsapp_cloud import WhatsAppCloudConfig, WhatsAppCloudDriver
from conversa.adapters.providers.whatsapp_number import DisplayNumber
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body
from conversa.domain.phone import PhoneNumber
from tests.fakes.providers import WHATSAPP_PHONE_ID, WHATSAPP_TOKEN

API = "https://graph.test"
NODE = f"{API}/v23.0/{WHATSAPP_PHONE_ID}"
CONFIG = WhatsAppCloudConfig(
    phone_id=WHATSAPP_PHONE_ID,
    token=SecretStr(WHATSAPP_TOKEN),
    api_base=API,
    api_version="v23.0",
    look_up_sender=True,
)
ACCEPTED = {"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}


class Graph:
    """Answers sends, and the phone number node with ``node`` (an answer or an error)."""

    def __init__(self, node: httpx.Response | type[httpx.RequestError]) -> None:
        self.node = node
        self.lookups: list[httpx.Request] = []
        self.sends = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.sends += 1
            return httpx.Response(200, json=ACCEPTED)
        self.lookups.append(request)
        if isinstance(self.node, httpx.Response):
            return self.node
        raise self.node("no route", request=request)


def driver(graph: Graph, config: WhatsAppCloudConfig = CONFIG) -> WhatsAppCloudDriver:
    client = httpx.Client(transport=httpx.MockTransport(graph))
    return WhatsAppCloudDriver(config, client, TemplateCatalog({}))


def outbound() -> OutboundMessage:
    return OutboundMessage(
        UUID(int=7), Channel.WHATSAPP, PhoneNumber.parse("+16505551234"), None, Body("hi")
    )


def test_the_display_number_is_looked_up_once_and_reported_in_e164() -> None:
    graph = Graph(httpx.Response(200, json={"display_phone_number": "+1 555-555-5555", "id": "1"}))
    meta = driver(graph)
    results = [meta.send(outbound()) for _ in range(3)]
    assert all(r.ok for r in results)
    assert [r.sender for r in results] == ["+15555555555"] * 3
    [lookup] = graph.lookups
    assert lookup.method == "GET"
    assert str(lookup.url) == f"{NODE}?fields=display_phone_number"
    assert lookup.headers["Authorization"] == f"Bearer {WHATSAPP_TOKEN}"


def test_a_driver_built_without_the_lookup_names_no_sender() -> None:
    graph = Graph(httpx.Response(200, json={"display_phone_number": "15555555555"}))
    result = driver(graph, replace(CONFIG, look_up_sender=False)).send(outbound())
    assert result.ok and result.sender is None
    assert graph.lookups == []


def test_a_failed_lookup_never_fails_a_send_and_is_tried_again_later() -> None:
    failures: list[httpx.Response | type[httpx.RequestError]] = [
        httpx.Response(401, json={"error": {"code": 190, "message": "expired"}}),
        httpx.Response(200, json={"id": "1"}),  # no display number
        httpx.Response(200, json={"display_phone_number": "not a number"}),
        httpx.ConnectError,
    ]
    for failure in failures:
        graph = Graph(failure)
        result = driver(graph).send(outbound())
        assert result.ok and result.provider_message_id == "wamid.1"
        assert result.sender is None
        assert len(graph.lookups) == 1


def test_after_a_failure_the_next_lookup_waits_its_turn() -> None:
    now = [0.0]
    graph = Graph(httpx.Response(503, text="down"))
    client = httpx.Client(transport=httpx.MockTransport(graph))
    number = DisplayNumber(NODE, SecretStr(WHATSAPP_TOKEN), client, clock=lambda: now[0])
    assert number.get() is None
    now[0] += DisplayNumber.RETRY_SECONDS - 1
    assert number.get() is None
    assert len(graph.lookups) == 1  # not yet
    graph.node = httpx.Response(200, json={"display_phone_number": "15555555555", "id": "1"})
    now[0] += 1
    assert number.get() == "+15555555555"
    now[0] += 10 * DisplayNumber.RETRY_SECONDS
    assert number.get() == "+15555555555"
    assert len(graph.lookups) == 2  # kept once found
