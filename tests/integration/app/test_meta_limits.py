"""``meta`` is bounded in depth and size for every caller (Python, HTTP, command line): a
value past the bounds is refused with field ``meta`` and a message stating them, whatever
it holds (deep nesting, a cycle, an integer too long to print), and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conversa.app.meta import MAX_META_BYTES, MAX_META_DEPTH
from conversa.app.service import ConversaService
from conversa.domain.errors import InvalidRequest
from tests.support import conversa


def deep(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... 1}}`` with ``levels`` objects, built without recursion."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    result: dict[str, Any] = value
    return result


def cyclic() -> dict[str, Any]:
    meta: dict[str, Any] = {}
    meta["self"] = meta
    return meta


@pytest.mark.parametrize(
    ("name", "meta"),
    [
        ("100,000 levels deep", deep(100_000)),
        ("one level too deep", deep(MAX_META_DEPTH + 1)),
        ("a cycle", cyclic()),
        ("an integer past the int-string limit", {"n": 10**5000}),
        ("too large", {"a": "x" * MAX_META_BYTES}),
        ("not an object", [1]),
    ],
)
def test_meta_past_its_limits_is_refused(service: ConversaService, name: str, meta: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        service.send("sms", "+15551234567", {"body": "x"}, {"meta": meta})
    assert raised.value.field == "meta", name
    assert f"{MAX_META_DEPTH} levels" in raised.value.message
    assert f"{MAX_META_BYTES} bytes" in raised.value.message
    assert service.app.recorder.max_notification_id() in (None, 0)


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param({"x": float("nan")}, id="NaN"),
        pytest.param({1: "x"}, id="non-string key"),
        pytest.param({"x": object()}, id="not a JSON value"),
        pytest.param({"x": b"bytes"}, id="bytes"),
    ],
)
def test_meta_must_hold_only_json_values(service: ConversaService, meta: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        service.send("sms", "+15551234567", {"body": "x"}, {"meta": meta})
    assert raised.value.field == "meta"
    assert "JSON" in raised.value.message


def test_meta_at_its_limits_is_kept(service: ConversaService) -> None:
    meta = {"deepest": deep(MAX_META_DEPTH - 1), "list": [[1, 2.5, None, True, "x"]]}
    result = service.send("sms", "+15551234567", {"body": "x"}, {"meta": meta})
    assert result.ok
    assert service.get_message(result.message_id).meta == meta


BAD_META = [
    "[" * 1500 + "]" * 1500,  # 1,500 levels: past the parser's recursion limit
    '{"a": ' + "[" * 100_000,  # unclosed, 100,000 levels
    '{"n": ' + "9" * 4301 + "}",  # past Python's int-string limit
    '{"a": ' * 20 + "1" + "}" * 20,  # valid JSON, deeper than meta may be
    "{'a': 1}",  # not JSON
]


def test_the_command_line_refuses_bad_meta_in_one_line(tmp_path: Path) -> None:
    # The command line's parsing does not depend on the store: SQLite is enough.
    url = f"sqlite:///{tmp_path / 'conversa.sqlite3'}"
    assert conversa("migrate", url=url, cwd=tmp_path).returncode == 0
    for raw in BAD_META:
        refused = conversa(
            "send",
            "--channel",
            "sms",
            "--to",
            "+15551234567",
            "--body",
            "x",
            "--meta",
            raw,
            url=url,
            cwd=tmp_path,
        )
        assert refused.returncode == 2, (raw[:40], refused.stderr[-2000:])
        assert "Traceback" not in refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(("conversa: --meta", "conversa: meta:")), line
        assert len(line) < 300, line
    status = conversa("projection", "status", "--json", url=url, cwd=tmp_path)
    assert json.loads(status.stdout)["head"] == 0


def test_text_no_store_can_hold_is_refused(service: ConversaService) -> None:
    for bad in ["\x00", "\ud800", "a\udfffb"]:
        for field in ["body", "from", "idempotency_key", "meta", "template.variables"]:
            payload: dict[str, Any] = {"body": "x"}
            opts: dict[str, Any] = {}
            if field == "body":
                payload = {"body": bad}
            elif field == "template.variables":
                payload = {"template": {"name": "t", "variables": [bad]}}
            elif field == "meta":
                opts = {"meta": {"k": [bad]}}
            else:
                opts = {field: bad}
            with pytest.raises(InvalidRequest) as raised:
                service.send("whatsapp", "+15551234567", payload, opts)
            assert raised.value.field == field, (field, bad)
    assert service.app.recorder.max_notification_id() in (None, 0)
