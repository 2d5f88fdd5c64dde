"""The rate limiter's failure settings: what a request gets when the storage fails, and how
long a call to the storage may take."""

from __future__ import annotations

import pytest

from conversa.app.settings import Settings, SettingsError


def test_the_rate_limiter_fails_open_after_half_a_second_by_default() -> None:
    settings = Settings.from_environ({})
    assert settings.rate_limit_on_error == "open"
    assert settings.rate_limit_timeout_seconds == 0.5
    closed = Settings.from_environ(
        {"CONVERSA_RATE_LIMIT_ON_ERROR": "closed", "CONVERSA_RATE_LIMIT_TIMEOUT_SECONDS": "2"}
    )
    assert (closed.rate_limit_on_error, closed.rate_limit_timeout_seconds) == ("closed", 2.0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVERSA_RATE_LIMIT_ON_ERROR", "sometimes"),
        ("CONVERSA_RATE_LIMIT_TIMEOUT_SECONDS", "0"),
        ("CONVERSA_RATE_LIMIT_TIMEOUT_SECONDS", "31"),
        ("CONVERSA_RATE_LIMIT_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({variable: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}: ")
