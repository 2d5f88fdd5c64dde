"""Telemetry: what the use cases report for the operator's metrics.

A port: the app layer calls it and knows nothing of the metrics system behind it. The
composition root wires the Prometheus adapter (``conversa.adapters.metrics``); the
default does nothing, for a service built without one.
"""

from __future__ import annotations

from typing import Protocol

#: ``outcome`` of a provider call: the provider took the message, or refused it for now
#: (a retry may follow), or for good, or the driver raised (a bug in it).
ACCEPTED = "accepted"
TRANSIENT_ERROR = "transient_error"
PERMANENT_ERROR = "permanent_error"
DRIVER_ERROR = "driver_error"


class Telemetry(Protocol):
    def provider_call_started(self, driver: str) -> None:
        """A driver is about to call its provider."""

    def provider_call_finished(self, driver: str, outcome: str, seconds: float) -> None:
        """The call that started ended with ``outcome`` after ``seconds``."""

    def retry_scheduled(self, driver: str) -> None:
        """An attempt through ``driver`` failed for now; the message will be tried again."""

    def dead_lettered(self, subscriber: str) -> None:
        """A subscriber gave up on an event: it became a dead letter."""

    def send_replayed(self, channel: str) -> None:
        """A send repeated an idempotency key: the stored message was returned, not sent."""


class NoTelemetry:
    """Reports nothing."""

    def provider_call_started(self, driver: str) -> None:
        pass

    def provider_call_finished(self, driver: str, outcome: str, seconds: float) -> None:
        pass

    def retry_scheduled(self, driver: str) -> None:
        pass

    def dead_lettered(self, subscriber: str) -> None:
        pass

    def send_replayed(self, channel: str) -> None:
        pass
