"""Helpers shared by the test suites."""

from __future__ import annotations

from conversa.app.settings import Settings


def make_settings(url: str, **overrides: str) -> Settings:
    """Settings for ``url``, with ``name=value`` overrides for ``CONVERSA_NAME``."""
    environ = {
        "CONVERSA_DATABASE_URL": url,
        **{f"CONVERSA_{k.upper()}": v for k, v in overrides.items()},
    }
    return Settings.from_environ(environ)
