"""prometheus-client's multiprocess mode as ``serve --workers N`` uses it: a directory of
its own, and the live gauges of a process that died dropped from the sums."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conversa.adapters.metrics import (
    MULTIPROCESS_VARIABLE,
    mark_dead_processes,
    multiprocess_mode,
)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_several_processes_get_a_directory_of_their_own_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MULTIPROCESS_VARIABLE, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with multiprocess_mode(1) as directory:
        assert directory is None
        assert MULTIPROCESS_VARIABLE not in os.environ
    with multiprocess_mode(2) as directory:
        assert directory is not None and Path(directory).is_dir()
        assert Path(directory).parent == tmp_path
        assert os.environ[MULTIPROCESS_VARIABLE] == directory
    assert not Path(directory).exists()
    assert MULTIPROCESS_VARIABLE not in os.environ


def test_a_directory_the_operator_gives_is_used_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROCESS_VARIABLE, str(tmp_path))
    with multiprocess_mode(4) as directory:
        assert directory == str(tmp_path)
    assert tmp_path.is_dir()
    assert os.environ[MULTIPROCESS_VARIABLE] == str(tmp_path)


def test_the_live_gauges_of_dead_processes_are_dropped_and_their_counters_kept(
    tmp_path: Path,
) -> None:
    dead, alive = dead_pid(), os.getpid()
    names = [
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")

    mark_dead_processes(str(tmp_path))

    kept = {f"counter_{dead}.db", f"histogram_{dead}.db"}  # its sends still count
    kept |= {f"gauge_livesum_{alive}.db", f"counter_{alive}.db"}
    assert {p.name for p in tmp_path.iterdir()} == kept
