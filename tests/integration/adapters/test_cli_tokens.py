"""``conversa token ...``, run as a real process against both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conversa.app.bootstrap import bootstrap
from conversa.app.settings import Settings
from tests.support import conversa


def authenticates(url: str, secret: str) -> bool:
    with bootstrap(Settings.from_environ({"CONVERSA_DATABASE_URL": url})) as service:
        return service.tokens.authenticate(secret) is not None


def test_create_list_and_revoke_tokens(backend_url: str, tmp_path: Path) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0

    created = conversa(
        "token",
        "create",
        "ci-bot",
        url=backend_url,
        cwd=tmp_path,
        extra={"CONVERSA_LOG_LEVEL": "DEBUG"},
    )
    assert created.returncode == 0, created.stderr
    # The secret alone on standard output, for `TOKEN=$(conversa token create NAME)`; what
    # people read goes to standard error.
    (secret,) = created.stdout.splitlines()
    assert created.stdout == secret + "\n"
    assert secret.startswith("cnv_") and secret == secret.strip() and " " not in secret
    assert "created token ci-bot (id " in created.stderr
    assert "not shown again" in created.stderr
    assert "created api token name=ci-bot" in created.stderr  # logs were on, at DEBUG
    assert secret not in created.stderr  # but the secret is never logged
    assert authenticates(backend_url, secret)

    other = conversa(
        "token",
        "create",
        "deploy",
        "--console",
        "--allow-consent-override",
        url=backend_url,
        cwd=tmp_path,
    )
    assert other.returncode == 0, other.stderr
    other_secret = other.stdout.strip()

    listed = conversa("token", "list", url=backend_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    table = [line.split() for line in listed.stdout.splitlines()]
    assert table[0] == ["NAME", "ID", "CREATED", "STATUS", "PERMISSIONS"]
    assert [(row[0], row[-2], row[-1]) for row in table[1:]] == [
        ("ci-bot", "active", "-"),
        ("deploy", "active", "console,consent-override"),
    ]
    assert secret not in listed.stdout and other_secret not in listed.stdout

    revoked = conversa("token", "revoke", "ci-bot", url=backend_url, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "ci-bot" in revoked.stdout and "revoked" in revoked.stdout
    assert not authenticates(backend_url, secret)
    assert authenticates(backend_url, other_secret)
    again = conversa("token", "revoke", "ci-bot", url=backend_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # revoking twice is harmless

    as_json = conversa("token", "list", "--json", url=backend_url, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    tokens = json.loads(as_json.stdout)
    assert [(t["name"], t["status"]) for t in tokens] == [
        ("ci-bot", "revoked"),
        ("deploy", "active"),
    ]
    assert tokens[0]["revoked_at"] is not None and tokens[1]["revoked_at"] is None
    assert [(t["console"], t["allow_consent_override"]) for t in tokens] == [
        (False, False),
        (True, True),
    ]
    assert tokens[0]["created_at"].endswith("Z")

    unknown = conversa("token", "revoke", "nobody", url=backend_url, cwd=tmp_path)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().startswith("conversa: no token named 'nobody'")
    assert unknown.stdout == ""


def test_bad_and_taken_names_are_refused_with_the_field_named(
    backend_url: str, tmp_path: Path
) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    assert conversa("token", "create", "ci-bot", url=backend_url, cwd=tmp_path).returncode == 0

    for name in ("ci bot", "x" * 65, "ci-bot"):
        refused = conversa("token", "create", name, url=backend_url, cwd=tmp_path)
        assert refused.returncode == 2, name
        assert refused.stderr.strip().startswith("conversa: name:"), refused.stderr
        assert "cnv_" not in refused.stdout  # no secret handed out for a token not stored
    taken = conversa("token", "create", "ci-bot", url=backend_url, cwd=tmp_path)
    assert "already exists" in taken.stderr

    listed = conversa("token", "list", "--json", url=backend_url, cwd=tmp_path)
    assert [t["name"] for t in json.loads(listed.stdout)] == ["ci-bot"]


def test_the_readme_snippet_takes_the_secret_and_fails_loudly_the_second_time(
    backend_url: str, tmp_path: Path
) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    # The README's line, as a script with `set -e` runs it, twice.
    script = 'TOKEN=$("$PYTHON" -m conversa token create demo); echo "token:$TOKEN"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATABASE_URL": backend_url, "PYTHON": sys.executable})

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    (line,) = first.stdout.splitlines()
    secret = line.removeprefix("token:")
    assert secret.startswith("cnv_") and authenticates(backend_url, secret)
    assert "created token demo" in first.stderr  # the people-facing line, out of $TOKEN

    second = run()
    assert second.returncode != 0  # the script stops there, instead of going on without
    assert second.stdout == ""  # no empty token echoed
    assert "conversa: name:" in second.stderr and "already exists" in second.stderr
