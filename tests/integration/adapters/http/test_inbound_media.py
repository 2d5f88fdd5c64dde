"""``GET /conversa/messages/{id}/media/{n}``: an inbound attachment streamed from a fake
provider on loopback with the provider's credentials (Twilio: basic auth on the media
URL; Meta: the token on both steps), refused past the size cap, never stored."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
from conversa.domain.inbound import inbound_message_id_for
from tests.fakes.inbound import BUSINESS, CONTACT
from tests.fakes.providers import Answer, FakeProvider
from tests.integration.adapters.http.conftest import Api, running_api
from tests.support import make_settings

PICTURE = bytes(range(256)) * 40  # 10 KiB
SID, TOKEN, META_TOKEN = "AC" + "1" * 32, "twilio-token", "meta-token"


class Scripted(FakeProvider):
    def handle(self, received: object) -> Answer:  # noqa: ARG002
        return Answer(404, b"{}")


@pytest.fixture
def fake() -> Iterator[Scripted]:
    with Scripted() as server:
        yield server


def api_for(backend_url: str, fake: Scripted, **overrides: str) -> Iterator[Api]:
    settings = make_settings(
        backend_url,
        rate_limit="1000000/minute",
        twilio_sid=SID,
        twilio_token=TOKEN,
        whatsapp_token=META_TOKEN,
        whatsapp_api_base=fake.url,
        **overrides,
    )
    migrate(settings)
    with bootstrap(settings) as service, running_api(service) as api:
        yield api


def inbound(api: Api, provider: str, media: list[dict[str, str]]) -> str:
    api.service.record_inbound(
        InboundReport(
            provider=provider,
            provider_message_id=f"{provider}-media",
            channel=Channel.WHATSAPP,
            sender=CONTACT,
            recipient=BUSINESS,
            body=None,
            kind="image",
            media=media,
        )
    )
    return str(inbound_message_id_for(provider, f"{provider}-media"))


def test_a_twilio_attachment_is_fetched_with_basic_auth(backend_url: str, fake: Scripted) -> None:
    for api in api_for(backend_url, fake):
        message_id = inbound(
            api, "twilio", [{"content_type": "image/jpeg", "url": f"{fake.url}/Media/ME1"}]
        )
        fake.answer(Answer(200, PICTURE, "image/jpeg"))
        response = api.get(f"/conversa/messages/{message_id}/media/0", headers=api.auth)
        assert response.status_code == 200, response.text
        assert response.content == PICTURE
        assert response.headers["content-type"] == "image/jpeg"
        [request] = fake.requests
        assert request.path == "/Media/ME1"
        expected = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        # No attachment 1, not an inbound message, the provider refusing.
        assert (
            api.get(f"/conversa/messages/{message_id}/media/1", headers=api.auth).status_code == 404
        )
        fake.answer(Answer(403, b"{}"))
        refused = api.get(f"/conversa/messages/{message_id}/media/0", headers=api.auth)
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "media_unavailable"


def test_a_meta_attachment_takes_two_steps_with_the_token(backend_url: str, fake: Scripted) -> None:
    for api in api_for(backend_url, fake):
        message_id = inbound(api, "whatsapp_cloud", [{"content_type": "image/png", "id": "1234"}])
        fake.answer(
            Answer.json(200, {"url": f"{fake.url}/download/1234", "mime_type": "image/png"}),
            Answer(200, PICTURE, "image/png"),
        )
        response = api.get(f"/conversa/messages/{message_id}/media/0", headers=api.auth)
        assert response.status_code == 200, response.text
        assert response.content == PICTURE
        lookup, download = fake.requests
        assert lookup.path.endswith("/1234") and download.path == "/download/1234"
        assert (
            lookup.headers["authorization"]
            == download.headers["authorization"]
            == (f"Bearer {META_TOKEN}")
        )


def test_an_attachment_over_the_cap_is_refused(backend_url: str, fake: Scripted) -> None:
    for api in api_for(backend_url, fake, media_max_bytes="1000"):
        message_id = inbound(
            api, "twilio", [{"content_type": "image/jpeg", "url": f"{fake.url}/Media/ME1"}]
        )
        fake.answer(Answer(200, PICTURE, "image/jpeg"))
        response = api.get(f"/conversa/messages/{message_id}/media/0", headers=api.auth)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "media_too_large"
