from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from conversa.domain.errors import InvalidPhoneNumber


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number in E.164 form (``+15551234567``).

    Parsing refuses what cannot possibly be a number for its country (wrong length, no
    country code). It deliberately stops short of ``is_valid_number``: that check rejects
    the fictional +1 555 numbers used in documentation and tests, and whether a number
    really reaches a handset is the provider's call, reported back as a failure.
    """

    e164: str

    @classmethod
    def parse(cls, raw: object, *, field: str = "to") -> PhoneNumber:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidPhoneNumber(field, f"{field} must be a phone number in E.164 form")
        return cls(_e164(raw.strip(), field))

    def masked(self) -> str:
        """The number with all but the country prefix and the last two digits hidden."""
        return self.e164[:3] + "*" * (len(self.e164) - 5) + self.e164[-2:]

    def __str__(self) -> str:
        return self.e164


@lru_cache(maxsize=65_536)
def _e164(text: str, field: str) -> str:
    """``text`` in E.164 form. Cached: libphonenumber takes about 0.1 ms a number, which
    is most of what validating a batch costs, and senders write to the same numbers again
    (only valid numbers are kept; a refusal raises every time)."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(
            field,
            f"{field} is not a phone number with a country code (E.164, like +15551234567)",
        ) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(field, f"{field} is not a possible phone number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
