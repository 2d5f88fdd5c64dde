"""Sends that wait on a slow provider must not starve the rest of the server.

A send holds a thread for its whole provider call (up to the client's timeouts). With
64 sends waiting on a provider that takes 8 s, the health check and a signed webhook
still answer at once: they run on threads that no send can take.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import running_server
from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, slow

PUBLIC = "https://hooks.example.com"
SENDS = 64
PROVIDER_SECONDS = 8.0  # under the client's 10 s read timeout: every send ends "sent"
PROBES = 7
#: What a probe that waits for a send's thread would take at least: the provider's delay.
#: The bound below sits far under it and far above a scheduling hiccup on a busy machine.
WAITED_FOR_A_SEND = 2.0
PROBE_TIMEOUT = 3.0


def signed_report(probe: httpx.Client, message_id: str, provider_id: str) -> httpx.Request:
    path = f"/conversa/webhooks/twilio?message_id={message_id}"
    params = {
        "AccountSid": TWILIO_SID,
        "MessageSid": provider_id,
        "MessageStatus": "delivered",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, params)
    return probe.build_request(
        "POST",
        path,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def timed(probe: httpx.Client, request: httpx.Request) -> float:
    """Seconds the server took to answer ``request`` with 200, over a connection already
    open; a timeout counts as its full wait."""
    began = time.perf_counter()
    try:
        response = probe.send(request)
    except httpx.TimeoutException:
        return PROBE_TIMEOUT
    assert response.status_code == 200, response.text
    return time.perf_counter() - began


@pytest.mark.slow
@pytest.mark.postgres
def test_health_and_webhooks_answer_while_sends_wait_on_a_slow_provider(
    postgres_url: str, tmp_path: Path
) -> None:
    with (
        FakeTwilio() as twilio,
        running_server(
            postgres_url,
            tmp_path,
            sms_driver="twilio",
            twilio_sid=TWILIO_SID,
            twilio_token=TWILIO_TOKEN,
            twilio_sms_from="+15550006666",
            twilio_api_base=twilio.url,
            webhook_base_url=PUBLIC,
            rate_limit="100000/minute",
        ) as server,
        server.client(limits=httpx.Limits(max_connections=SENDS + 8)) as client,
        httpx.Client(base_url=server.base_url, timeout=PROBE_TIMEOUT) as probe,
        ThreadPoolExecutor(SENDS) as pool,
    ):
        first = client.post(
            "/conversa/messages", json={"channel": "sms", "to": "+15551234567", "body": "first"}
        ).json()
        assert first["status"] == "sent"
        assert probe.get("/conversa/health").status_code == 200  # the probes' connection

        twilio.always(slow(PROVIDER_SECONDS))
        began = time.monotonic()
        sends = [
            pool.submit(
                client.post,
                "/conversa/messages",
                json={"channel": "sms", "to": "+15551234567", "body": f"slow {n}"},
            )
            for n in range(SENDS)
        ]
        # Every send is with the provider, or waiting for its turn at the server.
        deadline = time.monotonic() + PROVIDER_SECONDS / 2
        while twilio.calls < 1 + 32 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)

        health = [
            timed(probe, probe.build_request("GET", "/conversa/health")) for _ in range(PROBES)
        ]
        report = signed_report(probe, first["id"], first["provider_message_id"])
        webhook = [timed(probe, report) for _ in range(PROBES)]
        # Typically a few milliseconds each; the bound on the slowest one says that no
        # probe waited for a thread held by a send.
        assert statistics.median(health) < 0.1, health
        assert statistics.median(webhook) < 0.1, webhook
        assert max(health + webhook) < WAITED_FOR_A_SEND, (health, webhook)
        probed_within = time.monotonic() - began
        assert probed_within < PROVIDER_SECONDS, "the probes must run while the sends wait"

        answers = [future.result(timeout=4 * PROVIDER_SECONDS) for future in sends]

    # And no send timed out waiting for a connection to the provider.
    assert [a.status_code for a in answers] == [201] * SENDS
    assert {a.json()["status"] for a in answers} == {"sent"}, [a.json()["error"] for a in answers]
    assert twilio.calls == 1 + SENDS
