"""Bodies that break a JSON parser or encoder (deep nesting, integers past Python's
int-string limit) are the client's mistake: 400 ``malformed_json`` or 422 naming the field,
never a 500, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conversa.app.meta import MAX_META_BYTES, MAX_META_DEPTH
from tests.integration.adapters.http.conftest import Api

HUGE_INT = "9" * 4301  # one digit past Python's default int-string conversion limit


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def objects(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


def send(api: Api, raw: str | bytes) -> Any:
    return api.post(
        "/conversa/messages",
        content=raw.encode() if isinstance(raw, str) else raw,
        headers={**api.auth, "Content-Type": "application/json"},
    )


def stored_messages(api: Api) -> int:
    return api.service.app.recorder.max_notification_id() or 0


ENVELOPE = '{"channel": "sms", "to": "+15551234567", %s}'


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("64 KiB of [", "[" * (64 * 1024 - 1)),
        ("unclosed nesting in meta", ENVELOPE % ('"body": "x", "meta": {"a": ' + "[" * 5000)),
        ("meta nested 1,500 deep", ENVELOPE % f'"body": "x", "meta": {{"a": {nested(1500)}}}'),
        ("a huge integer as the document", HUGE_INT),
        ("a huge integer as body", ENVELOPE % f'"body": {HUGE_INT}'),
        ("a huge integer in meta", ENVELOPE % f'"body": "x", "meta": {{"n": {HUGE_INT}}}'),
        (
            "a huge integer in variables",
            ENVELOPE % f'"template": {{"name": "t", "variables": [{HUGE_INT}]}}',
        ),
        ("a huge negative integer", ENVELOPE % f'"body": "x", "meta": {{"n": -{HUGE_INT}}}'),
    ],
)
def test_a_body_the_parser_cannot_take_is_a_400(api: Api, name: str, raw: str) -> None:
    before = stored_messages(api)
    response = send(api, raw)
    assert response.status_code == 400, (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] == "malformed_json"
    assert error["message"].startswith("the body is not valid JSON")
    assert HUGE_INT not in response.text
    assert stored_messages(api) == before


@pytest.mark.parametrize(
    ("name", "meta"),
    [
        # Parses (Python's parser goes about 1,000 deep) but is deeper than meta may be.
        ("nested 900 deep", {"a": json.loads(nested(900))}),
        ("one level too deep", json.loads(objects(MAX_META_DEPTH + 1))),
        ("too large", {"a": "x" * MAX_META_BYTES}),
    ],
)
def test_meta_past_its_limits_is_a_422_naming_meta(api: Api, name: str, meta: object) -> None:
    before = stored_messages(api)
    body = {"channel": "sms", "to": "+15551234567", "body": "x", "meta": meta}
    response = send(api, json.dumps(body))
    assert response.status_code == 422, (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    message = error["fields"]["meta"]
    assert f"{MAX_META_DEPTH} levels" in message and f"{MAX_META_BYTES} bytes" in message
    assert stored_messages(api) == before


def test_meta_at_its_limits_is_accepted(api: Api) -> None:
    deepest = json.loads(objects(MAX_META_DEPTH - 1, leaf="[1]"))
    for meta in (deepest, {"n": int("9" * 4000)}, {"a": "x" * (MAX_META_BYTES - 10)}):
        body = {"channel": "sms", "to": "+15551234567", "body": "x", "meta": meta}
        response = send(api, json.dumps(body))
        assert response.status_code == 201, response.text[:300]
        assert response.json()["meta"] == meta


UNSTORABLE = ["\\u0000", "\\ud800", "a\\udc00b"]  # as JSON escapes
UNSTORABLE_IN = [
    ("body", '"body": "x%sy"'),
    ("from", '"body": "x", "from": "a%s"'),
    ("meta", '"body": "x", "meta": {"k": "%s"}'),
    ("meta", '"body": "x", "meta": {"%s": 1}'),
    ("template.name", '"template": {"name": "t%s"}'),
    ("template.variables", '"template": {"name": "t", "variables": ["%s"]}'),
]


def test_text_no_store_can_hold_is_a_422_naming_the_field(api: Api) -> None:
    """PostgreSQL's text and jsonb refuse NUL, and UTF-8 has no unpaired surrogates: JSON
    can carry both as escapes, and either would break a write (a 500) or the projection."""
    before = stored_messages(api)
    for escape in UNSTORABLE:
        for field, template in UNSTORABLE_IN:
            response = send(api, ENVELOPE % (template % escape))
            assert response.status_code == 422, (field, escape, response.text)
            assert field in response.json()["error"]["fields"]
    assert stored_messages(api) == before


def test_a_surrogate_pair_is_one_character_and_welcome(api: Api) -> None:
    response = send(api, ENVELOPE % '"body": "smile \\ud83d\\ude00"')
    assert response.status_code == 201, response.text
    assert response.json()["body"] == "smile \N{GRINNING FACE}"
