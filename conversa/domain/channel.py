from __future__ import annotations

from enum import StrEnum

from conversa.domain.errors import UnknownChannel


class Channel(StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"

    @classmethod
    def parse(cls, value: object) -> Channel:
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        choices = ", ".join(c.value for c in cls)
        raise UnknownChannel("channel", f"channel must be one of {choices}")

    @property
    def max_body_length(self) -> int:
        """The longest free-text body the providers accept on this channel."""
        return 1600 if self is Channel.SMS else 4096
