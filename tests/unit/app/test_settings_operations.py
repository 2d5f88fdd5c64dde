"""The operations settings: the send pool's size and the log format."""

from __future__ import annotations

import pytest

from conversa.app.bootstrap import provider_limits
from conversa.app.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_environ({})
    assert settings.send_concurrency == 64
    assert settings.log_format is None  # decided by whether standard error is a terminal


def test_the_provider_client_has_a_connection_for_every_send_in_flight() -> None:
    settings = Settings.from_environ({"CONVERSA_SEND_CONCURRENCY": "200"})
    limits = provider_limits(settings.send_concurrency)
    assert limits.max_connections is not None
    assert limits.max_connections > 200


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVERSA_SEND_CONCURRENCY", "0"),
        ("CONVERSA_SEND_CONCURRENCY", "many"),
        ("CONVERSA_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: [^\n]+$"):
        Settings.from_environ({variable: value})
