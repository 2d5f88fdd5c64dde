"""``GET /metrics`` as an operator reads it: provider-call latency per driver and outcome,
retries, dead letters, idempotent replays apart from new sends, and the projection's lag
read from the database at most once a second however often it is scraped."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conversa.adapters.http.app import create_app
from conversa.adapters.http.metrics import ProjectionGauges
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projector import ProjectionStatus, Projector
from conversa.app.service import ConversaService
from conversa.app.subscribers import SubscriberRunner, Subscription
from conversa.events import LifecycleEvent
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeTwilio,
    running,
    twilio_error,
)
from tests.support import make_settings

TO = "+15551234567"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running(FakeTwilio())


@pytest.fixture
def service(backend_url: str, twilio: FakeTwilio) -> Iterator[ConversaService]:
    settings = make_settings(
        backend_url,
        sms_driver="twilio",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        twilio_sms_from="+15550006666",
        twilio_api_base=twilio.url,
        webhook_base_url="https://hooks.example.com",
        rate_limit="100000/minute",
    )
    migrate(settings)
    with bootstrap(settings) as built:
        yield built


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_after(service: ConversaService, *requests: tuple[str, dict[str, object]]) -> str:
    """Make ``requests`` (path, json body and headers) against an in-process app of
    ``service``, then scrape ``/metrics``."""
    _info, secret = service.tokens.create(f"metrics-{len(requests)}-{id(requests)}")
    app = create_app(lambda: service, run_worker=False)

    async def call() -> str:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://conversa"
            ) as client,
        ):
            for path, body in requests:
                headers = {"Authorization": f"Bearer {secret}"}
                key = body.pop("idempotency_key", None)
                if key is not None:
                    headers["Idempotency-Key"] = str(key)
                response = await client.post(path, json=body, headers=headers)
                assert response.status_code in (200, 201), response.text
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            return metrics.text

    return asyncio.run(call())


def test_provider_calls_retries_and_replays_are_counted(
    service: ConversaService, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "close", lambda: None)  # the fixture closes it
    twilio.answer(SERVICE_UNAVAILABLE, twilio_error(21211))
    send = {"channel": "sms", "to": TO, "body": "hi"}

    text = scrape_after(
        service,
        ("/conversa/messages", {**send}),  # transient error: scheduled for a retry
        ("/conversa/messages", {**send}),  # permanent error: failed
        ("/conversa/messages", {**send, "idempotency_key": "k1"}),  # accepted
        ("/conversa/messages", {**send, "idempotency_key": "k1"}),  # a replay: no call
    )

    histogram = "conversa_provider_call_seconds"
    assert value(text, f"{histogram}_count", driver="twilio", outcome="transient_error") == 1
    assert value(text, f"{histogram}_count", driver="twilio", outcome="permanent_error") == 1
    assert value(text, f"{histogram}_count", driver="twilio", outcome="accepted") == 1
    assert value(text, f"{histogram}_bucket", driver="twilio", outcome="accepted", le="+Inf") == 1
    assert value(text, f"{histogram}_sum", driver="twilio", outcome="accepted") > 0
    assert value(text, "conversa_provider_calls_in_flight", driver="twilio") == 0
    assert value(text, "conversa_retries_total", driver="twilio") == 1
    assert value(text, "conversa_idempotent_replays_total", channel="sms") == 1
    # New sends only: the replay is not a second message.
    assert value(text, "conversa_api_messages_total", channel="sms", status="sent") == 1
    assert value(text, "conversa_api_messages_total", channel="sms", status="failed") == 1
    assert value(text, "conversa_api_messages_total", channel="sms", status="queued") == 1
    assert twilio.calls == 3
    assert value(text, "conversa_projection_lag") > 0  # nothing runs the projection here


def test_dead_letters_are_counted_per_subscriber(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "close", lambda: None)
    service.send("sms", TO, {"body": "hi"})

    def refuse(event: LifecycleEvent) -> None:
        raise RuntimeError(f"refused {event.event_id}")

    subscription = Subscription(name="refuser", handler=refuse, max_attempts=1)
    runner = SubscriberRunner(
        subscription, service.feed, service.subscriber_store, service.telemetry
    )
    assert runner.run_once()
    assert len(service.subscriber_store.dead_letters("refuser")) == 1

    text = scrape_after(service)
    assert value(text, "conversa_subscriber_dead_letters_total", subscriber="refuser") == 1


def test_the_projection_gauges_query_the_database_at_most_once_a_second(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries: list[ProjectionStatus] = []
    real_status = Projector.status

    def counted(projector: Projector) -> ProjectionStatus:
        status = real_status(projector)
        queries.append(status)
        return status

    monkeypatch.setattr(Projector, "status", counted)
    now = [100.0]
    gauges = ProjectionGauges(service, clock=lambda: now[0])

    for _ in range(50):
        assert gauges.status().lag == 0
    assert len(queries) == 1

    service.send("sms", TO, {"body": "hi"})  # events the projection has not applied
    now[0] += 0.9
    assert gauges.status().lag == 0  # still the cached reading
    now[0] += 0.1
    assert gauges.status().lag > 0  # a second old: read again
    assert len(queries) == 2


def test_metrics_names_are_documented_in_the_exposition(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "close", lambda: None)
    text = scrape_after(service)
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.MULTILINE))
    for name in (
        "conversa_provider_call_seconds",
        "conversa_provider_calls_in_flight",
        "conversa_retries_total",
        "conversa_subscriber_dead_letters_total",
        "conversa_idempotent_replays_total",
        "conversa_api_messages_total",
        "conversa_projection_lag",
    ):
        assert name in helps, name


def test_two_services_in_one_process_keep_their_own_counts(
    backend_url: str, tmp_path: Path
) -> None:
    settings = make_settings(backend_url)
    migrate(settings)
    with bootstrap(settings) as first, bootstrap(settings) as second:
        first.send("sms", TO, {"body": "hi"}, {"idempotency_key": "k"})
        first.send("sms", TO, {"body": "hi"}, {"idempotency_key": "k"})
        assert value(exposition(first), "conversa_idempotent_replays_total", channel="sms") == 1
        assert value(exposition(second), "conversa_idempotent_replays_total", channel="sms") == 0


def exposition(service: ConversaService) -> str:
    from conversa.adapters.metrics import PrometheusMetrics

    assert isinstance(service.telemetry, PrometheusMetrics)
    return service.telemetry.exposition().decode()
