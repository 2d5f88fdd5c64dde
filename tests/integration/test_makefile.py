"""The Makefile: ``make run`` installs only what the service needs, the development extras
come with the targets that need them (tests, lint, bench), also after a ``make run``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def planned(workdir: Path, *args: str) -> list[str]:
    """The commands ``make -n ARGS`` would run there (nothing is run)."""
    result = subprocess.run(
        ["make", "-n", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [c for c in commands if "pip install" in c and "--upgrade pip" not in c]


def test_make_run_installs_runtime_dependencies_and_tests_get_the_dev_extras(
    tmp_path: Path,
) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    long_ago = time.time() - 3600
    os.utime(tmp_path / "pyproject.toml", (long_ago, long_ago))

    (run_install,) = installs(planned(tmp_path, "run"))
    assert "-e ." in run_install and "[dev]" not in run_install
    assert any("conversa serve --host 127.0.0.1 --port 8000" in c for c in planned(tmp_path, "run"))
    assert any("--port 9000" in c for c in planned(tmp_path, "run", "PORT=9000"))
    for target in ("test", "lint", "bench"):
        (dev_install,) = installs(planned(tmp_path, target))
        assert "[dev]" in dev_install, target

    # After a `make run` (its stamp exists), `make test` still installs the dev extras,
    # and `make run` installs nothing again.
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".installed-runtime").touch()
    assert installs(planned(tmp_path, "run")) == []
    (dev_install,) = installs(planned(tmp_path, "test"))
    assert "[dev]" in dev_install

    # After the dev install, neither installs anything.
    (venv / ".installed").touch()
    assert installs(planned(tmp_path, "test")) == []
    assert installs(planned(tmp_path, "run")) == []
