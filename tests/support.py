"""Helpers shared by the test suites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conversa.app.settings import Settings


def make_settings(url: str, **overrides: str) -> Settings:
    """Settings for ``url``, with ``name=value`` overrides for ``CONVERSA_NAME``."""
    environ = {
        "CONVERSA_DATABASE_URL": url,
        **{f"CONVERSA_{k.upper()}": v for k, v in overrides.items()},
    }
    return Settings.from_environ(environ)


def conversa(
    *args: str, url: str, cwd: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m conversa ARGS`` as a real process, with none of this process's
    ``CONVERSA_*`` variables: only the database ``url`` and the ``extra`` environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATABASE_URL": url, **(extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "conversa", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
