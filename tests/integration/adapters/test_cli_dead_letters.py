"""``conversa events dead-letters`` and ``conversa events replay``, as real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.subscribers import SubscriberRunner
from tests.support import conversa, make_settings

ROOT = Path(__file__).resolve().parents[3]
PATH = "tests.fakes.subscribers:record"


def cli(url: str, events_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    extra = {
        "CONVERSA_SUBSCRIBERS": PATH,
        "CONVERSA_TEST_EVENTS_FILE": str(events_file),
        "PYTHONPATH": str(ROOT),
    }
    return conversa("events", *args, url=url, cwd=ROOT, extra=extra)


def test_dead_letters_are_listed_and_replayed(
    backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("CONVERSA_TEST_EVENTS_FILE", str(events_file))
    monkeypatch.setenv("CONVERSA_TEST_FAIL", "1")
    settings = make_settings(
        backend_url,
        subscribers=PATH,
        subscriber_max_attempts="2",
        subscriber_retry_base_seconds="0.01",
    )
    migrate(settings)
    with bootstrap(settings) as service:
        sent = service.send("sms", "+15551234567", {"body": "hello"})
        (subscription,) = service.subscriptions
        SubscriberRunner(subscription, service.feed, service.subscriber_store).run_once()

    listed = cli(backend_url, events_file, "dead-letters", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert letter["subscriber"] == PATH
    assert letter["event"]["message_id"] == str(sent.message_id)
    assert letter["attempts"] == 2 and "told to fail" in letter["error"]
    assert not events_file.exists()

    replayed = cli(backend_url, events_file, "replay", str(letter["id"]))  # no longer failing
    assert replayed.returncode == 0, replayed.stderr
    (event,) = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert event["event_id"] == letter["event"]["event_id"] and event["type"] == "message.sent"
    assert cli(backend_url, events_file, "dead-letters").stdout.strip() == "no dead letters"
    again = cli(backend_url, events_file, "replay", str(letter["id"]))
    assert again.returncode == 1 and "no dead letter" in again.stderr
