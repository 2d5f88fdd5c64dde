"""``GET /metrics``: the Prometheus counters (of every server process), and the read
model's lag."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from conversa.adapters.metrics import PrometheusMetrics
from conversa.app.failover import RECENT, BreakerState, breaker_statuses
from conversa.app.projector import ProjectionStatus
from conversa.app.service import ConversaService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: How long the database-derived gauges are served from memory: scrapes, however many,
#: query the database at most once per this many seconds and process.
DATABASE_GAUGES_MAX_AGE = 1.0


def metrics_of(service: ConversaService) -> PrometheusMetrics:
    """The service's metrics, when it reports to Prometheus (as bootstrap wires it);
    otherwise a registry of the HTTP counters alone."""
    telemetry = service.telemetry
    return telemetry if isinstance(telemetry, PrometheusMetrics) else PrometheusMetrics()


class ProjectionGauges(Collector):
    """The projection's position and lag, read from the database at most once a second."""

    def __init__(
        self,
        service: ConversaService,
        *,
        max_age: float = DATABASE_GAUGES_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._status: ProjectionStatus | None = None
        self._read_at = 0.0

    def status(self) -> ProjectionStatus:
        with self._lock:  # concurrent scrapes wait for one query rather than make many
            now = self.clock()
            if self._status is None or now - self._read_at >= self.max_age:
                self._status = self.service.projector().status()
                self._read_at = now
            return self._status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.status()
        yield GaugeMetricFamily(
            "conversa_projection_lag", "Events recorded but not yet in the read model", status.lag
        )
        yield GaugeMetricFamily(
            "conversa_projection_position", "Last event applied to the read model", status.position
        )


class BreakerGauges(Collector):
    """The circuit breakers of the failover lists, as this process sees them (breakers are
    per process: under ``--workers N`` each scrape shows the process that answered)."""

    def __init__(self, service: ConversaService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statuses = breaker_statuses(list(self.service.drivers.values()))
        if not statuses:
            return
        state = GaugeMetricFamily(
            "conversa_driver_breaker_state",
            "Circuit breaker of each failover driver in this process: 1 for its state",
            labels=["driver", "state"],
        )
        rate = GaugeMetricFamily(
            "conversa_driver_error_rate",
            f"Share of failures among the last {RECENT} attempts of each failover driver "
            "in this process",
            labels=["driver"],
        )
        for status in statuses:
            for each in BreakerState:
                state.add_metric([status.driver, each.value], float(status.state is each))
            rate.add_metric([status.driver], status.error_rate)
        yield state
        yield rate


async def metrics(request: Request) -> Response:
    state = request.app.state.conversa
    body = await run_in_threadpool(
        state.metrics.exposition, state.database_gauges, BreakerGauges(state.service)
    )
    return Response(body, media_type=CONTENT_TYPE)
