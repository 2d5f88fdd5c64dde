"""The ``sms`` entry of a template: the text a WhatsApp send of it falls back to."""

from __future__ import annotations

import pytest

from conversa.adapters.providers.templates import TemplateCatalog
from conversa.app.settings import SettingsError

CATALOG = TemplateCatalog.parse(
    """
[order_shipped]
whatsapp_cloud = { name = "order_shipped", language = "en_US" }
sms = { text = "Your order {1} has shipped to {2}; {3} stays as it is" }
[welcome]
whatsapp_cloud = { name = "welcome", language = "en" }
"""
)


def test_the_sms_text_is_filled_in() -> None:
    assert CATALOG.sms_text("order_shipped", ("1Z999", "Lisbon")) == (
        "Your order 1Z999 has shipped to Lisbon; {3} stays as it is"
    )
    assert CATALOG.sms_text("welcome", ()) is None
    assert CATALOG.sms_text("unknown", ()) is None


@pytest.mark.parametrize(
    "entry",
    ['sms = { text = "" }', "sms = { body = 'x' }", 'sms = { text = "x", extra = 1 }', "sms = 3"],
)
def test_a_bad_sms_entry_stops_start_up(entry: str) -> None:
    with pytest.raises(SettingsError, match=r"CONVERSA_TEMPLATES_FILE: .*\[t\.sms"):
        TemplateCatalog.parse(f"[t]\n{entry}\n")
