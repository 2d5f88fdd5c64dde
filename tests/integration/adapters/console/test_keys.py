"""The console's cookie key: the setting's, or one generated once and shared by every
process of the machine through a private file."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conversa.adapters.console.keys import console_key
from tests.support import make_settings


def test_a_generated_key_is_kept_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "console.key"
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite3'}", console_secret_file=str(path))
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: console_key(settings), range(16)))
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) == 64
    assert path.read_bytes().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["console.key"]  # no temporary left
    path.unlink()
    assert console_key(settings) != key  # deleting the file signs everybody out


def test_the_setting_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "console.key"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        console_secret="a-long-shared-secret-for-all-servers",
        console_secret_file=str(path),
    )
    assert console_key(settings) == b"a-long-shared-secret-for-all-servers"
    assert not path.exists()
