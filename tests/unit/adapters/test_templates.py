"""TemplateCatalog: the templates file, per-driver lookups, and start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conversa.adapters.providers.templates import (
    TemplateCatalog,
    TwilioTemplate,
    UnknownTemplate,
    WhatsAppCloudTemplate,
)
from conversa.app.settings import SettingsError
from conversa.domain.errors import InvalidRequest

CONTENT_SID = "HX" + "0123456789abcdef" * 2
GOOD = f"""
[order_shipped]
twilio = {{ content_sid = "{CONTENT_SID}" }}
whatsapp_cloud = {{ name = "order_shipped", language = "en_US" }}

[otp]
whatsapp_cloud = {{ name = "otp_code", language = "pt_BR" }}
"""


def test_the_contract_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(GOOD, encoding="utf-8")
    catalog = TemplateCatalog.load(path)
    assert catalog.names() == ["order_shipped", "otp"]
    assert len(catalog) == 2
    assert catalog.for_driver("order_shipped", "twilio") == TwilioTemplate(CONTENT_SID)
    assert catalog.for_driver("order_shipped", "whatsapp_cloud") == WhatsAppCloudTemplate(
        "order_shipped", "en_US"
    )
    assert catalog.for_driver("otp", "whatsapp_cloud") == WhatsAppCloudTemplate("otp_code", "pt_BR")


def test_no_file_is_an_empty_catalog() -> None:
    catalog = TemplateCatalog.load(None)
    assert len(catalog) == 0
    with pytest.raises(UnknownTemplate):
        catalog.for_driver("order_shipped", "twilio")


def test_an_unknown_name_is_an_invalid_request_on_template_name() -> None:
    catalog = TemplateCatalog.parse(GOOD)
    with pytest.raises(UnknownTemplate) as raised:
        catalog.for_driver("welcome", "twilio")
    error = raised.value
    assert isinstance(error, InvalidRequest)
    assert error.field == "template.name"
    assert error.code == "unknown_template"
    assert "'welcome'" in error.message
    assert "CONVERSA_TEMPLATES_FILE" in error.message


def test_a_name_without_a_mapping_for_the_driver_says_so() -> None:
    catalog = TemplateCatalog.parse(GOOD)
    with pytest.raises(UnknownTemplate) as raised:
        catalog.for_driver("otp", "twilio")
    assert raised.value.field == "template.name"
    assert "'otp' has no twilio mapping" in raised.value.message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[order_shipped\ntwilio = 1", "is not valid TOML"),
        ('order_shipped = "HX..."', "[order_shipped] must be a table"),
        ("[order_shipped]", "[order_shipped] maps no driver"),
        ('[a]\ntwilio = "HX"', "[a.twilio] must be an inline table"),
        ('[a]\ntwilio = { content_sid = "HX123" }', "[a.twilio.content_sid] must be HX"),
        (f'[a]\ntwilio = {{ content_sid = "{CONTENT_SID}x" }}', "[a.twilio.content_sid]"),
        ("[a]\ntwilio = { content_sid = 7 }", "[a.twilio.content_sid]"),
        ("[a]\ntwilio = {}", "[a.twilio] lacks content_sid"),
        (
            f'[a]\ntwilio = {{ content_sid = "{CONTENT_SID}", sid = "x" }}',
            "[a.twilio] has unknown keys sid",
        ),
        ('[a]\nwhatsapp_cloud = { name = "a" }', "[a.whatsapp_cloud] lacks language"),
        (
            '[a]\nwhatsapp_cloud = { name = "Order Shipped", language = "en" }',
            "[a.whatsapp_cloud.name]",
        ),
        (
            '[a]\nwhatsapp_cloud = { name = "a", language = "english" }',
            "[a.whatsapp_cloud.language]",
        ),
        ('[a]\nwhatsapp = { name = "a", language = "en" }', "unknown driver 'whatsapp'"),
    ],
)
def test_a_malformed_file_stops_start_up_with_one_line(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        TemplateCatalog.load(path)
    message = str(raised.value)
    assert message.startswith("CONVERSA_TEMPLATES_FILE: ")
    assert "\n" not in message
    assert where in message
    assert str(path) in message


def test_a_missing_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(SettingsError) as raised:
        TemplateCatalog.load(path)
    message = str(raised.value)
    assert message.startswith("CONVERSA_TEMPLATES_FILE: cannot read ")
    assert str(path) in message
    assert "\n" not in message


def test_a_file_that_is_not_utf8_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("[caf\xe9]\n".encode("latin-1"))
    with pytest.raises(SettingsError, match=r"^CONVERSA_TEMPLATES_FILE: cannot read "):
        TemplateCatalog.load(path)
