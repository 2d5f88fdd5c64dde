"""``CONVERSA_SMS_DRIVER`` and ``CONVERSA_WHATSAPP_DRIVER``: one driver, or an ordered
failover list of them; anything else stops start-up with one line naming the variable."""

from __future__ import annotations

import pytest

from conversa.app.settings import Settings, SettingsError


def settings(**values: str) -> Settings:
    return Settings.from_environ({f"CONVERSA_{k.upper()}": v for k, v in values.items()})


def test_a_list_is_an_ordered_failover_list() -> None:
    chosen = settings(
        sms_driver=" twilio , vonage,africastalking", whatsapp_driver="whatsapp_cloud,twilio"
    )
    assert chosen.sms_drivers == ("twilio", "vonage", "africastalking")
    assert chosen.sms_driver == "twilio,vonage,africastalking"
    assert chosen.whatsapp_drivers == ("whatsapp_cloud", "twilio")
    assert settings().sms_drivers == ("log",)
    assert (chosen.failover_threshold, chosen.failover_cooldown_seconds) == (5, 30.0)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("sms_driver", "carrier-pigeon", "unknown driver 'carrier-pigeon'"),
        ("sms_driver", "twilio,,vonage", "comma-separated list"),
        ("sms_driver", "twilio,twilio", "twice"),
        ("sms_driver", "twilio,log", "log cannot be part of a failover list"),
        ("whatsapp_driver", "whatsapp_cloud,vonage", "unknown driver 'vonage'"),
        ("failover_threshold", "0", "greater than or equal to 1"),
        ("vonage_signature_method", "sha384", "md5hash"),
    ],
)
def test_bad_lists_stop_start_up(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=rf"^CONVERSA_{variable.upper()}: .*{says}"):
        settings(**{variable: value})
