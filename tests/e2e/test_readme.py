"""The README's HTTP examples work as printed: every ``sh`` block of its "HTTP API"
section runs, in order, in one shell, against a server started the way ``make run`` does
(SQLite, log driver); only the port differs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.conftest import running_server

ROOT = Path(__file__).resolve().parents[2]


def http_api_examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_every_curl_example_of_the_readme_works(tmp_path: Path) -> None:
    blocks = http_api_examples()
    script = "\n".join(blocks)
    for path in (
        "/conversa/messages",
        "/conversa/messages/$MESSAGE_ID",
        "/conversa/health",
        "/conversa/events",
    ):
        assert f"$API_BASE{path}" in script, f"no example for {path}"
    assert "/conversa/openapi.json" in script
    assert "http://127.0.0.1:8000" in script

    database = f"sqlite:///{tmp_path / 'conversa.sqlite3'}"
    with running_server(database, tmp_path) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
        env["CONVERSA_DATABASE_URL"] = database
        result = subprocess.run(
            [
                "bash",
                "-e",
                "-o",
                "pipefail",
                "-c",
                script.replace("http://127.0.0.1:8000", server.base_url),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "HTTP/1.1 201" in output  # the idempotent send, printed with its headers
    documents = json_documents(output)
    assert not [d for d in documents if set(d) == {"error"}], output
    # Lifecycle events (the event stream's data lines) have a channel too: apart.
    events = [d for d in documents if "event_id" in d]
    messages: list[dict[str, Any]] = [d for d in documents if "channel" in d and d not in events]
    # Four sends answered once sent, one answered 202 (queued), and one inspection.
    assert len(messages) == 6, output
    (accepted,) = [m for m in messages if m["status"] == "queued"]
    assert accepted["body"] == "Maintenance tonight at 22:00"
    (batch,) = [d["data"] for d in documents if "data" in d and "meta" not in d]
    assert [(item["index"], item["status"]) for item in batch] == [(0, 201), (1, 201)], output
    batched = [item["message"] for item in batch]
    assert [m["idempotency_key"] for m in batched] == ["mnt-1", "mnt-2"]
    # The stream of every event so far: each a message sent, the synchronous sends' among
    # them in order (the worker sends the queued ones meanwhile).
    assert {e["type"] for e in events} == {"message.sent"}, output
    sent_ids = [e["message_id"] for e in events]
    synchronous = [m["id"] for m in messages if m["status"] == "sent"]
    assert [i for i in sent_ids if i in synchronous] == synchronous, output
    assert set(sent_ids) <= {m["id"] for m in messages + batched}, output
    assert any(
        m.get("template") == {"name": "order_shipped", "variables": ["1Z999"]} for m in messages
    )
    (inspected,) = [m for m in messages if "events" in m]
    assert [e["type"] for e in inspected["events"]] == ["queued", "sent"]
    # The message log, its inbound messages (none yet), and the conversations.
    listed, inbound, _conversations = [d["meta"] for d in documents if "data" in d and "meta" in d]
    assert inbound["total"] == 0
    # Five SMS were recorded before the list; it may be read before the projection has them.
    assert listed["page"] == 1 and listed["per_page"] == 25 and listed["total"] <= 5
    assert {"status": "ok"} in documents
    assert any(str(d.get("openapi", "")).startswith("3.") for d in documents)


def json_documents(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``text`` (curl prints them back to back, without newlines)."""
    decoder = json.JSONDecoder()
    documents: list[dict[str, Any]] = []
    position = 0
    while (start := text.find("{", position)) != -1:
        try:
            document, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        documents.append(document)
    return documents
