"""sent_from: the sender a driver reports, in the form inbound messages name our number."""

from __future__ import annotations

import pytest

from conversa.adapters.providers.common import sent_from


@pytest.mark.parametrize(
    ("used", "reported"),
    [
        ("+15550001111", "+15550001111"),
        ("whatsapp:+15550001111", "+15550001111"),
        ("15550001111", "+15550001111"),  # Vonage writes numbers without their +
        (" +1 555 000 1111 ", "+15550001111"),
        ("ACME", "ACME"),  # an alphanumeric sender id
        ("12345", "12345"),  # a short code
        ("", None),
        (None, None),
    ],
)
def test_numbers_are_reported_in_e164_and_other_senders_as_they_are(
    used: str | None, reported: str | None
) -> None:
    assert sent_from(used) == reported
