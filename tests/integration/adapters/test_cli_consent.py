"""``conversa consent show|opt-out|opt-in|import`` as a real process, on both stores: an
import records each row once (source ``import``), a second run changes nothing, a bad
row is refused with its line and column; a send then honours what was imported."""

from __future__ import annotations

import json
from pathlib import Path

from conversa.app.bootstrap import bootstrap, migrate
from tests.support import conversa, make_settings

ROWS = 2500  # more than one chunk of the importer


def write_csv(path: Path) -> None:
    lines = ["number,channel,scope,status"]
    lines += [f"+1555{i:07d},sms,all,opted_out" for i in range(ROWS)]
    lines.append("+44 20 7946 0018,whatsapp,marketing,opted_out")  # another spelling
    lines.append("12,sms,all,opted_out")  # not a number
    lines.append("+15550009999,sms,sometimes,opted_out")  # bad scope
    path.write_text("\n".join(lines) + "\n")


def test_an_import_is_recorded_once_and_a_second_run_changes_nothing(
    backend_url: str, tmp_path: Path
) -> None:
    migrate(make_settings(backend_url))
    path = tmp_path / "optouts.csv"
    write_csv(path)
    first = conversa("consent", "import", str(path), url=backend_url, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # two rows refused
    assert f"{ROWS + 1} changed, 0 already so, 2 refused" in first.stdout
    assert f"line {ROWS + 3}: number:" in first.stderr
    assert f"line {ROWS + 4}: scope:" in first.stderr
    assert "12," not in first.stderr  # no number in an error line

    second = conversa("consent", "import", str(path), url=backend_url, cwd=tmp_path)
    assert f"0 changed, {ROWS + 1} already so, 2 refused" in second.stdout

    shown = conversa("consent", "show", "+442079460018", "--json", url=backend_url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["consent"]["whatsapp"] == {"all": "unknown", "marketing": "opted_out"}
    assert [(h["source"], h["scope"]) for h in document["history"]] == [("import", "marketing")]

    with bootstrap(make_settings(backend_url)) as service:
        assert service.send("sms", "+15550000042", {"body": "hi"}).status == "failed"
        assert service.send("whatsapp", "+15550000042", {"body": "hi"}).ok
        events = list(service.app.events.get(service.consent.load("+15550000042").id))  # type: ignore[union-attr]
        assert len(events) == 2  # registered, opted out: once, for both runs

    changed = conversa(
        "consent", "opt-in", "+15550000042", "--channel", "sms", url=backend_url, cwd=tmp_path
    )
    assert changed.returncode == 0, changed.stderr
    assert "sms       all: opted_in" in changed.stdout
    assert "opted_in  sms      all       api cli" in changed.stdout
    refused = conversa("consent", "opt-out", "nope", url=backend_url, cwd=tmp_path)
    assert refused.returncode == 2
    assert "number:" in refused.stderr
