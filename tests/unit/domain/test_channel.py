"""Channel.parse: the two channels, and nothing else."""

from __future__ import annotations

import pytest

from conversa.domain.channel import Channel
from conversa.domain.errors import UnknownChannel


@pytest.mark.parametrize(("raw", "channel"), [("sms", Channel.SMS), ("whatsapp", Channel.WHATSAPP)])
def test_parse_known_channels(raw: str, channel: Channel) -> None:
    parsed = Channel.parse(raw)
    assert parsed is channel
    assert parsed == raw


@pytest.mark.parametrize("raw", ["email", "SMS", "", None, 1])
def test_parse_unknown_channel(raw: object) -> None:
    with pytest.raises(UnknownChannel) as caught:
        Channel.parse(raw)
    assert caught.value.field == "channel"
    assert caught.value.code == "unknown_channel"
    assert "sms" in caught.value.message
    assert "whatsapp" in caught.value.message


def test_max_body_length_per_channel() -> None:
    assert Channel.SMS.max_body_length == 1600
    assert Channel.WHATSAPP.max_body_length == 4096
