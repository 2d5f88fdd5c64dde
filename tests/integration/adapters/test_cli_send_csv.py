"""``conversa send --csv FILE``, run as a real process against both stores: a file sent in
batches, interrupted, run again (nothing twice), refused rows named by their line."""

from __future__ import annotations

import csv
from pathlib import Path

from conversa.app.bootstrap import bootstrap
from conversa.app.projection import MessageQuery
from tests.support import conversa, make_settings

BAD_NUMBER = "+1555"


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = ["channel", "to", "body", "template", "variables", "idempotency_key"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def campaign() -> list[dict[str, str]]:
    rows = []
    for n in range(40):
        row = {"channel": "sms", "to": f"+1202555{n:04d}", "body": f"Outage at 22:00, ref {n}"}
        if n % 2:
            row["idempotency_key"] = f"outage-{n}"
        rows.append(row)
    rows[10] = {"channel": "sms", "to": BAD_NUMBER, "body": "never sent"}  # line 12
    rows[20] = {"channel": "whatsapp", "to": "+12025550999", "template": "outage",
                "variables": "not json"}  # fmt: skip
    rows[30] = {"channel": "whatsapp", "to": "+12025550998", "template": "outage",
                "variables": '["22:00"]'}  # fmt: skip
    rows.append(dict(rows[0]))  # the same row twice: two messages, each once
    return rows


def stored_count(url: str) -> int:
    with bootstrap(make_settings(url)) as service:
        service.projector().catch_up()
        return service.list_messages(MessageQuery(per_page=1)).total


def test_a_csv_file_is_sent_in_batches_and_resumed_without_doubles(
    backend_url: str, tmp_path: Path
) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    rows = campaign()
    full = write_csv(tmp_path / "outage.csv", rows)
    # A first run that got through the first 25 rows only (interrupted).
    partial = write_csv(tmp_path / "outage-partial.csv", rows[:25])
    first = conversa(
        "send", "--csv", str(partial), "--batch-size", "7", url=backend_url, cwd=tmp_path
    )
    assert first.returncode == 1, first.stderr  # a row was refused
    assert "line 12: to: to is not a possible phone number" in first.stderr
    assert "line 22: variables:" in first.stderr
    assert BAD_NUMBER not in first.stderr + first.stdout
    assert "25 rows: 23 queued, 0 already recorded (by an earlier run), 2 refused" in first.stdout
    assert stored_count(backend_url) == 23

    # The whole file: what the first run recorded is recognised, the rest is recorded.
    second = conversa("send", "--csv", str(full), url=backend_url, cwd=tmp_path)
    assert second.returncode == 1
    assert "41 rows: 16 queued, 23 already recorded (by an earlier run), 2 refused" in second.stdout
    assert stored_count(backend_url) == 39

    # Once more, and this time send them from this process: every message once.
    third = conversa("send", "--csv", str(full), "--wait", url=backend_url, cwd=tmp_path)
    assert "0 queued, 39 already recorded" in third.stdout
    with bootstrap(make_settings(backend_url)) as service:
        service.projector().catch_up()
        page = service.list_messages(MessageQuery(per_page=100))
    assert page.total == 39
    assert {row.status for row in page.rows} == {"sent"}
    assert {row.attempts for row in page.rows} == {1}


def test_a_file_that_is_not_a_campaign_is_refused_whole(backend_url: str, tmp_path: Path) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("channel,phone,body\nsms,+12025550100,hi\n")
    refused = conversa("send", "--csv", str(wrong), url=backend_url, cwd=tmp_path)
    assert refused.returncode == 2
    assert "unknown column 'phone'" in refused.stderr
    both = conversa(
        "send", "--csv", str(wrong), "--to", "+12025550100", url=backend_url, cwd=tmp_path
    )
    assert both.returncode == 2
    assert stored_count(backend_url) == 0
