"""The ``conversa`` command line, run as a real process against both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import conversa


def test_migrate_send_and_inspect_the_projection(backend_url: str, tmp_path: Path) -> None:
    unmigrated = conversa("projection", "status", url=backend_url, cwd=tmp_path)
    assert unmigrated.returncode == 1
    assert "conversa migrate" in unmigrated.stderr

    for _ in range(2):  # migrating twice is safe
        migrated = conversa("migrate", url=backend_url, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr

    sent = conversa(
        "send",
        "--channel",
        "sms",
        "--to",
        "+15551234567",
        "--body",
        "hello",
        url=backend_url,
        cwd=tmp_path,
    )
    assert sent.returncode == 0, sent.stderr
    message = json.loads(sent.stdout)
    assert (message["status"], message["to"], message["body"]) == ("sent", "+15551234567", "hello")
    assert "+15551234567" not in sent.stderr  # the log line masks the number

    status = conversa("projection", "status", "--json", url=backend_url, cwd=tmp_path)
    assert json.loads(status.stdout) == {"position": 0, "head": 2, "lag": 2}

    rebuilt = conversa("projection", "rebuild", url=backend_url, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt from 2 events" in rebuilt.stdout and "events/s" in rebuilt.stdout
    status = conversa("projection", "status", "--json", url=backend_url, cwd=tmp_path)
    assert json.loads(status.stdout) == {"position": 2, "head": 2, "lag": 0}


def test_bad_input_is_refused_with_the_field_named(backend_url: str, tmp_path: Path) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    refused = conversa(
        "send", "--channel", "sms", "--to", "+1 555", "--body", "x", url=backend_url, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("conversa: to:")
    status = conversa("projection", "status", "--json", url=backend_url, cwd=tmp_path)
    assert json.loads(status.stdout)["head"] == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVERSA_SMS_DRIVER", "carrier-pigeon"),
        ("CONVERSA_MAX_RETRIES", "many"),
        ("CONVERSA_DATABASE_URL", "mysql://localhost/x"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    variable: str, value: str, tmp_path: Path
) -> None:
    result = conversa(
        "migrate", url=f"sqlite:///{tmp_path / 'x.sqlite3'}", cwd=tmp_path, extra={variable: value}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]
    assert not (tmp_path / "x.sqlite3").exists()


def test_migrate_says_which_tables_it_created(backend_url: str, tmp_path: Path) -> None:
    first = conversa("migrate", url=backend_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created "), first.stdout
    for table in (
        "conversa_messages",
        "conversa_payloads",
        "conversa_subscriber_positions",
        "conversa_dead_letters",
    ):
        assert table in first.stdout
    assert "up to date" not in first.stdout

    again = conversa("migrate", url=backend_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("all ") and "already present" in again.stdout, again.stdout
    assert "created" not in again.stdout


def test_version_and_what_the_worker_runs(tmp_path: Path) -> None:
    from conversa._version import installed_version

    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    version = conversa("--version", url=url, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"conversa {installed_version()}"
    assert installed_version() != "0.0.0"  # the test runs against an installed package

    described = conversa("worker", "--help", url=url, cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    text = " ".join(described.stdout.split()).lower()
    for duty in (
        "projection",
        "dispatcher",
        "retries",
        "crash",
        "subscriber",
        "conversa_subscribers",
        "conversa_events_url",
        "parked",
        "payloads",
    ):
        assert duty in text, duty
    assert not (tmp_path / "x.sqlite3").exists()  # --help and --version touch nothing


def test_a_lease_shorter_than_a_provider_call_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    assert conversa("migrate", url=url, cwd=tmp_path).returncode == 0
    # Every command that opens the service refuses it (a worker would make double sends).
    refused = conversa(
        "projection",
        "status",
        url=url,
        cwd=tmp_path,
        extra={"CONVERSA_ATTEMPT_LEASE_SECONDS": "1"},
    )
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "CONVERSA_ATTEMPT_LEASE_SECONDS" in line and "28" in line
    accepted = conversa(
        "projection",
        "status",
        url=url,
        cwd=tmp_path,
        extra={"CONVERSA_ATTEMPT_LEASE_SECONDS": "29"},
    )
    assert accepted.returncode == 0, accepted.stderr
