"""Settings.from_environ: defaults, one-line errors naming the variable, hidden secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from conversa.app.settings import Settings, SettingsError


def test_an_explicit_mapping_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    monkeypatch.setenv("CONVERSA_SMS_DRIVER", "foo")
    monkeypatch.setenv("CONVERSA_MAX_RETRIES", "7")

    settings = Settings.from_environ({"CONVERSA_WHATSAPP_DRIVER": "twilio"})
    assert settings.sms_driver == "log"
    assert settings.max_retries == 3
    assert settings.whatsapp_driver == "twilio"

    # The same process environment is read (and refused) when no mapping is given.
    with pytest.raises(SettingsError, match=r"^CONVERSA_SMS_DRIVER: "):
        Settings.from_environ()


def test_defaults() -> None:
    settings = Settings.from_environ({})
    assert settings.database_url == "sqlite:///conversa.sqlite3"
    assert settings.sms_driver == "log"
    assert settings.whatsapp_driver == "log"
    assert settings.max_retries == 3
    assert settings.store_body is True
    assert settings.rate_limit == "120/minute"
    assert settings.webhook_base_url is None
    assert settings.twilio_token is None
    assert settings.parked_report_hours == 24


def test_values_are_read_from_the_mapping() -> None:
    settings = Settings.from_environ(
        {
            "CONVERSA_DATABASE_URL": "postgresql://u:p@localhost:5432/conversa",
            "CONVERSA_SMS_DRIVER": "twilio",
            "CONVERSA_MAX_RETRIES": "5",
            "CONVERSA_STORE_BODY": "false",
            "CONVERSA_WEBHOOK_BASE_URL": "https://hooks.example.com/",
            "CONVERSA_RATE_LIMIT": "10 per second",
            "OTHER_MAX_RETRIES": "abc",  # not ours: ignored
        }
    )
    assert settings.database_url == "postgresql://u:p@localhost:5432/conversa"
    assert settings.sms_driver == "twilio"
    assert settings.max_retries == 5
    assert settings.store_body is False
    assert settings.webhook_base_url == "https://hooks.example.com"
    assert settings.rate_limit == "10 per second"


def test_empty_values_fall_back_to_defaults() -> None:
    settings = Settings.from_environ({"CONVERSA_SMS_DRIVER": "", "CONVERSA_MAX_RETRIES": ""})
    assert settings.sms_driver == "log"
    assert settings.max_retries == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVERSA_SMS_DRIVER", "foo"),
        ("CONVERSA_WHATSAPP_DRIVER", "foo"),
        ("CONVERSA_MAX_RETRIES", "abc"),
        ("CONVERSA_MAX_RETRIES", "21"),
        ("CONVERSA_DATABASE_URL", "mysql://x"),
        ("CONVERSA_WEBHOOK_BASE_URL", "ftp://x"),
        ("CONVERSA_RATE_LIMIT", "lots"),
        ("CONVERSA_PARKED_REPORT_HOURS", "0"),
        ("CONVERSA_PARKED_REPORT_HOURS", "soon"),
        ("CONVERSA_QUIET_HOURS", "9pm-8am"),
        ("CONVERSA_QUIET_HOURS", "21:00-21:00"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({variable: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{variable}: ")
    assert not message.startswith(f"{variable}: Value error")
    assert len(message) > len(variable) + 2


def test_several_bad_values_are_all_named_on_one_line() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"CONVERSA_SMS_DRIVER": "foo", "CONVERSA_RATE_LIMIT": "lots"})
    message = str(caught.value)
    assert "\n" not in message
    assert "CONVERSA_SMS_DRIVER" in message
    assert "CONVERSA_RATE_LIMIT" in message


SECRETS = {
    "CONVERSA_TWILIO_TOKEN": "tw-secret-0001",
    "CONVERSA_WHATSAPP_TOKEN": "wa-secret-0002",
    "CONVERSA_WHATSAPP_VERIFY_TOKEN": "verify-secret-0003",
    "CONVERSA_WHATSAPP_APP_SECRET": "app-secret-0004",
}


def test_secrets_are_secret_strings() -> None:
    settings = Settings.from_environ(SECRETS)
    secrets = {
        "CONVERSA_TWILIO_TOKEN": settings.twilio_token,
        "CONVERSA_WHATSAPP_TOKEN": settings.whatsapp_token,
        "CONVERSA_WHATSAPP_VERIFY_TOKEN": settings.whatsapp_verify_token,
        "CONVERSA_WHATSAPP_APP_SECRET": settings.whatsapp_app_secret,
    }
    for variable, secret in secrets.items():
        assert isinstance(secret, SecretStr)
        assert secret.get_secret_value() == SECRETS[variable]


def test_secret_values_never_appear_in_str_or_repr() -> None:
    settings = Settings.from_environ(SECRETS)
    shown = str(settings) + repr(settings)
    assert "twilio_token" in shown  # the field is shown, just not its value
    for value in SECRETS.values():
        assert value not in shown
