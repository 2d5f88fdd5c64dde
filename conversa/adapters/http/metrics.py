"""``GET /metrics``: Prometheus counters of this process, and the read model's lag."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from conversa.app.service import ConversaService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry per application (not the process-wide default), so that several apps
    in one process (tests) do not collide."""

    def __init__(self, service: ConversaService) -> None:
        self.registry = CollectorRegistry()
        self.webhook_reports = Counter(
            "conversa_webhook_reports",
            "Status reports received by webhook, by what they did",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.webhook_inbound = Counter(
            "conversa_webhook_inbound_messages",
            "Inbound messages received by webhook (accepted, not yet processed)",
            ["provider"],
            registry=self.registry,
        )
        self.webhook_rejected = Counter(
            "conversa_webhook_rejected",
            "Webhook requests refused, by reason",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.messages_sent = Counter(
            "conversa_api_messages",
            "Messages sent through the HTTP API, by channel and resulting status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.registry.register(_ProjectionCollector(service))


class _ProjectionCollector(Collector):
    def __init__(self, service: ConversaService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.service.projector().status()
        yield GaugeMetricFamily(
            "conversa_projection_lag", "Events recorded but not yet in the read model", status.lag
        )
        yield GaugeMetricFamily(
            "conversa_projection_position", "Last event applied to the read model", status.position
        )


async def metrics(request: Request) -> Response:
    registry = request.app.state.conversa.metrics.registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE)
