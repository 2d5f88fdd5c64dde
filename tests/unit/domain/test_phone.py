"""PhoneNumber: parsing to E.164, refusing what cannot be a number, masking for logs."""

from __future__ import annotations

import pytest

from conversa.domain.errors import InvalidPhoneNumber, InvalidRequest
from conversa.domain.phone import PhoneNumber


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 555 123 4567", "+15551234567"),
        ("+15551234567", "+15551234567"),
        ("0015551234567", "+15551234567"),
        ("+44 20 7946 0958", "+442079460958"),
        ("  +15551234567  ", "+15551234567"),
    ],
)
def test_parse_normalises_to_e164(raw: str, e164: str) -> None:
    number = PhoneNumber.parse(raw)
    assert number.e164 == e164
    assert str(number) == e164


def test_equal_numbers_in_different_spellings_compare_equal() -> None:
    assert PhoneNumber.parse("+1 555 123 4567") == PhoneNumber.parse("0015551234567")


@pytest.mark.parametrize("raw", ["", "   ", "12345", "+1 555", "not a number", None, 42])
def test_parse_refuses_what_is_not_a_number(raw: object) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        PhoneNumber.parse(raw)
    assert caught.value.field == "to"
    assert caught.value.code == "invalid_phone_number"
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.message


def test_parse_names_the_field_it_was_given() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        PhoneNumber.parse("12345", field="from")
    assert caught.value.field == "from"
    assert "from" in caught.value.message


def test_masked_hides_all_but_prefix_and_last_two_digits() -> None:
    assert PhoneNumber.parse("+15551234567").masked() == "+15*******67"


def test_masked_keeps_the_length_and_never_shows_the_middle() -> None:
    number = PhoneNumber.parse("+44 20 7946 0958")
    masked = number.masked()
    assert len(masked) == len(number.e164)
    assert masked.startswith("+44")
    assert masked.endswith("58")
    assert "7946" not in masked
    assert set(masked[3:-2]) == {"*"}
