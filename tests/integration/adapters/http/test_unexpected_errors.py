"""An unexpected failure answers 500 with a request id and nothing else, and is logged."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from conversa.adapters.http.app import create_app
from conversa.app.projection import MessagePage, MessageQuery
from conversa.app.service import ConversaService


def test_an_unexpected_error_answers_500_with_only_a_request_id(
    service: ConversaService, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _info, secret = service.tokens.create("errors")

    def broken(query: MessageQuery) -> MessagePage:
        raise RuntimeError(f"database exploded near +15551234567 for {query}")

    monkeypatch.setattr(service, "list_messages", broken)
    monkeypatch.setattr(service, "close", lambda: None)  # the fixture closes it
    app = create_app(lambda: service, run_worker=False)

    async def call() -> httpx.Response:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://conversa"
            ) as client,
        ):
            response = await client.get(
                "/conversa/messages", headers={"Authorization": f"Bearer {secret}"}
            )
            assert (await client.get("/conversa/health")).status_code == 200  # still serving
            return response

    with caplog.at_level(logging.ERROR):
        response = asyncio.run(call())

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": f"unexpected error; quote request id {request_id}",
            "fields": {},
            "request_id": request_id,
        }
    }
    assert "exploded" not in response.text and "+1555" not in response.text
    (record,) = [r for r in caplog.records if r.name == "conversa.http"]
    assert request_id in record.getMessage()
    assert record.exc_info is not None
