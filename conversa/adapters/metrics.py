"""Prometheus metrics: the :class:`~conversa.app.telemetry.Telemetry` of the use cases,
and the counters of the HTTP adapter.

Each instance has its own registry, so that several services in one process (tests) do not
collide. Under ``conversa serve --workers N`` every process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, which ``serve`` turns
on before the processes start), and a scrape of any process reads them all: the counters
are the sums over every process, those of processes that ended included, so ``rate()``
means the same whichever process answers.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.registry import Collector

#: Set, prometheus-client keeps each process's values in files there (multiprocess mode).
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: Provider calls take milliseconds to the client's timeouts (about 28 s at worst).
PROVIDER_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROCESS_VARIABLE) or None


class PrometheusMetrics:
    """Every counter of one service, in one registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # The use cases (Telemetry)
        self.provider_calls = Histogram(
            "conversa_provider_call_seconds",
            "Provider calls by driver and outcome, and how long they took",
            ["driver", "outcome"],
            buckets=PROVIDER_CALL_BUCKETS,
            registry=registry,
        )
        self.provider_calls_in_flight = Gauge(
            "conversa_provider_calls_in_flight",
            "Provider calls under way, by driver",
            ["driver"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.retries = Counter(
            "conversa_retries",
            "Attempts that failed for now and were scheduled to be tried again, by driver",
            ["driver"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "conversa_subscriber_dead_letters",
            "Events a subscriber gave up on, by subscriber",
            ["subscriber"],
            registry=registry,
        )
        self.replays = Counter(
            "conversa_idempotent_replays",
            "Sends that repeated an idempotency key and got the stored message back",
            ["channel"],
            registry=registry,
        )
        # The HTTP adapter
        self.webhook_reports = Counter(
            "conversa_webhook_reports",
            "Status reports received by webhook, by what they did",
            ["provider", "outcome"],
            registry=registry,
        )
        self.webhook_inbound = Counter(
            "conversa_webhook_inbound_messages",
            "Inbound messages received by webhook (accepted, not yet processed)",
            ["provider"],
            registry=registry,
        )
        self.webhook_rejected = Counter(
            "conversa_webhook_rejected",
            "Webhook requests refused, by reason",
            ["provider", "reason"],
            registry=registry,
        )
        self.messages_sent = Counter(
            "conversa_api_messages",
            "New messages sent through the HTTP API (replays not included), by channel and "
            "resulting status",
            ["channel", "status"],
            registry=registry,
        )

    # Telemetry

    def provider_call_started(self, driver: str) -> None:
        self.provider_calls_in_flight.labels(driver).inc()

    def provider_call_finished(self, driver: str, outcome: str, seconds: float) -> None:
        self.provider_calls_in_flight.labels(driver).dec()
        self.provider_calls.labels(driver, outcome).observe(seconds)

    def retry_scheduled(self, driver: str) -> None:
        self.retries.labels(driver).inc()

    def dead_lettered(self, subscriber: str) -> None:
        self.dead_letters.labels(subscriber).inc()

    def send_replayed(self, channel: str) -> None:
        self.replays.labels(channel).inc()

    # Exposition

    def exposition(self, *extra: Collector) -> bytes:
        """The Prometheus text of every counter (of every process, in multiprocess mode),
        followed by what the ``extra`` collectors report (the database-derived gauges,
        which are the same from any process)."""
        directory = multiprocess_directory()
        if directory is None:
            counters = generate_latest(self.registry)
        else:
            mark_dead_processes(directory)
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged, directory)  # type: ignore[no-untyped-call]
            counters = generate_latest(merged)
        if not extra:
            return counters
        others = CollectorRegistry(auto_describe=False)
        for collector in extra:
            others.register(collector)
        return counters + generate_latest(others)


@contextmanager
def multiprocess_mode(processes: int) -> Iterator[str | None]:
    """Turn prometheus-client's multiprocess mode on for the ``processes`` server processes
    started inside (when there are several): a fresh directory in the environment they
    inherit, removed afterwards. A ``PROMETHEUS_MULTIPROC_DIR`` set by the operator is used
    as it is (and kept). Yields the directory, or None when the mode stays off."""
    given = multiprocess_directory()
    if given is not None or processes < 2:
        yield given
        return
    directory = tempfile.mkdtemp(prefix="conversa-metrics-")
    os.environ[MULTIPROCESS_VARIABLE] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROCESS_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


def mark_process_dead(pid: int | None = None) -> None:
    """Drop the live gauges of process ``pid`` (this one by default) in multiprocess mode;
    its counters stay in the sums. Called as a server process shuts down."""
    directory = multiprocess_directory()
    if directory is not None:
        _mark_dead(os.getpid() if pid is None else pid, directory)


def mark_dead_processes(directory: str) -> None:
    """Drop the live gauges of processes that died without saying so (a crash, a kill):
    uvicorn starts another in their place, and their in-flight calls are over."""
    for path in Path(directory).iterdir():
        found = _LIVE_GAUGE_FILE.match(path.name)
        if found is not None and not _alive(int(found.group(1))):
            _mark_dead(int(found.group(1)), directory)


def _mark_dead(pid: int, directory: str) -> None:
    prometheus_multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
