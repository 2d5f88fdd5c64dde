"""``/metrics`` and ``conversa diagnose`` show each failover driver's breaker and error rate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeTwilio,
    running,
)
from tests.fakes.regional import VONAGE_KEY, VONAGE_SECRET, FakeVonage
from tests.integration.adapters.http.test_metrics import scrape_after, value
from tests.support import conversa, make_settings

SETTINGS = {
    "sms_driver": "twilio,vonage",
    "twilio_sid": TWILIO_SID,
    "twilio_token": TWILIO_TOKEN,
    "twilio_sms_from": "+15550006666",
    "vonage_api_key": VONAGE_KEY,
    "vonage_api_secret": VONAGE_SECRET,
    "vonage_sms_from": "Conversa",
    "failover_threshold": "2",
    "rate_limit": "100000/minute",
}


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def vonage() -> Iterator[FakeVonage]:
    yield from running(FakeVonage())


@pytest.fixture
def service(backend_url: str, twilio: FakeTwilio, vonage: FakeVonage) -> Iterator[ConversaService]:
    settings = make_settings(
        backend_url, twilio_api_base=twilio.url, vonage_api_base=vonage.url, **SETTINGS
    )
    migrate(settings)
    with bootstrap(settings) as built:
        yield built


def test_metrics_show_each_breaker_and_error_rate(
    service: ConversaService, twilio: FakeTwilio
) -> None:
    twilio.always(SERVICE_UNAVAILABLE)
    body: dict[str, object] = {"channel": "sms", "to": "+15551234567", "body": "hi"}
    send = ("/conversa/messages", body)
    text = scrape_after(service, send, send, send)
    assert value(text, "conversa_driver_breaker_state", driver="twilio", state="open") == 1
    assert value(text, "conversa_driver_breaker_state", driver="twilio", state="closed") == 0
    assert value(text, "conversa_driver_breaker_state", driver="vonage", state="closed") == 1
    assert value(text, "conversa_driver_error_rate", driver="twilio") == 1.0
    assert value(text, "conversa_driver_error_rate", driver="vonage") == 0.0
    assert twilio.calls == 2  # the third went to Vonage at once


def test_diagnose_lists_the_failover_order(backend_url: str, tmp_path: Path) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    extra = {f"CONVERSA_{k.upper()}": v for k, v in SETTINGS.items()}
    result = conversa("diagnose", "--json", url=backend_url, cwd=tmp_path, extra=extra)
    found = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    detail = str(found["sms failover"]["detail"])
    assert detail.startswith("twilio (available, breaker closed")
    assert " -> vonage (available, breaker closed" in detail
    assert VONAGE_SECRET not in result.stdout and TWILIO_TOKEN not in result.stdout
    # Vonage's receipts need the signature secret, which is not set here.
    assert not found["vonage webhook secret"]["ok"]
    assert "CONVERSA_VONAGE_SIGNATURE_SECRET" in str(found["vonage webhook secret"]["detail"])
