"""The JSON answers: rendered by orjson, byte for byte what Starlette's renderer gives,
but for the spelling of a float's exponent (``1e-7``, where Python writes ``1e-07``)."""

from __future__ import annotations

import json

import pytest
from starlette.responses import JSONResponse

from conversa.adapters.http.responses import JsonResponse

RESOURCE = {
    "id": "0b6f3c1e-3f5e-4a47-9a62-3d0c2b0c8f11",
    "channel": "sms",
    "to": "+14155550101",
    "from": None,
    "status": "sent",
    "body": 'héllo ✓ "quoted" \\ \n\t\u2028 😀',
    "attempts": 1,
    "error": None,
    "meta": {"order": 42, "ratio": 0.1, "big": -(2**63), "tags": ["a", True, False, None, 0.5]},
    "created_at": "2026-12-06T09:00:00.123456Z",
}


@pytest.mark.parametrize(
    "content",
    [RESOURCE, {"received": 1, "inbound_messages": 0}, [], {"big": 2**64}, {"huge": 10**30}],
)
def test_the_same_bytes_as_starlette(content: object) -> None:
    assert JsonResponse(content).body == JSONResponse(content).body


def test_floats_keep_their_value() -> None:
    content = {"meta": {"small": 1e-7, "large": 1.5e300, "third": 1 / 3}}
    assert json.loads(bytes(JsonResponse(content).body)) == content
