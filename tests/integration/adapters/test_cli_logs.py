"""Where the command line's log lines go, and in which format: standard error only, as
JSON lines unless it is a terminal or ``CONVERSA_LOG_FORMAT`` says otherwise."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support import conversa

SEND = ("send", "--channel", "sms", "--to", "+15551234567", "--body", "hello")


def test_send_prints_only_its_result_and_logs_json_lines_to_stderr(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conversa.sqlite3'}"
    assert conversa("migrate", url=url, cwd=tmp_path).returncode == 0

    sent = conversa(*SEND, url=url, cwd=tmp_path, extra={"CONVERSA_LOG_LEVEL": "DEBUG"})

    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "sent"  # standard output: the message alone
    lines = [json.loads(line) for line in sent.stderr.splitlines()]  # not a terminal: JSON
    queued = [line for line in lines if line["message"].startswith("queued message_id=")]
    assert len(queued) == 1
    assert queued[0]["level"] == "INFO"
    assert queued[0]["logger"] == "conversa.app.service"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", queued[0]["time"])
    assert "request_id" not in queued[0]  # no request here


def test_the_log_format_can_be_chosen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'conversa.sqlite3'}"
    assert conversa("migrate", url=url, cwd=tmp_path).returncode == 0

    sent = conversa(*SEND, url=url, cwd=tmp_path, extra={"CONVERSA_LOG_FORMAT": "text"})

    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "sent"
    (queued,) = [line for line in sent.stderr.splitlines() if "queued message_id=" in line]
    assert re.match(r"^\d{4}-\d\d-\d\d \S+ INFO conversa\.app\.service \[-\] queued ", queued)

    refused = conversa(*SEND, url=url, cwd=tmp_path, extra={"CONVERSA_LOG_FORMAT": "xml"})
    assert refused.returncode == 2
    assert "CONVERSA_LOG_FORMAT" in refused.stderr
