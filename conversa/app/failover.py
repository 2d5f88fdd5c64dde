"""Failover by health: a channel served by an ordered list of drivers
(``CONVERSA_SMS_DRIVER=twilio,vonage``), each behind a circuit breaker of this process.

A breaker opens after ``threshold`` consecutive failures that say the provider is unwell
(transient errors, timeouts, and refusals about our account or route), stays open for
``cooldown``, then lets exactly one probe through: its success closes the breaker, its
failure opens it for another cooldown. An answer about the recipient (an invalid number)
means the provider is working, and resets the count.

:class:`FailoverDriver` is a :class:`~conversa.app.ports.Driver` for the service (it
validates, reports availability, and names the channel's first driver), and picks the
driver of each attempt (:meth:`FailoverDriver.choose`): the first available one whose
breaker lets it through, preferring any other over the one the previous attempt failed on.
The chosen driver is wrapped so that its outcome feeds its breaker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from conversa.app.ports import Driver, DriverError, DriverResult, OutboundMessage
from conversa.domain.channel import Channel

#: How many recent outcomes the error rate is computed over.
RECENT = 100


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cooled down: one probe may go, or is in flight


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    driver: str
    state: BreakerState
    consecutive_failures: int
    error_rate: float  # of the last RECENT outcomes; 0 with none
    outcomes: int


def counts_against(error: DriverError) -> bool:
    """Whether a failure says the provider (or our account with it) is unwell."""
    return error.transient or error.reroutable


def fails_over(error: DriverError) -> bool:
    """Whether another provider may succeed where this attempt failed: not when the error
    is about the recipient or the content."""
    return error.transient or error.reroutable


class Breaker:
    """The circuit breaker of one driver. Thread-safe."""

    def __init__(self, driver: str, *, threshold: int, cooldown: float, clock: Callable[[], float]):
        self.driver = driver
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._recent: deque[bool] = deque(maxlen=RECENT)  # True: a failure

    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at < self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows(self) -> bool:
        """Whether an attempt may go through now, without taking the probe."""
        with self._lock:
            state = self._state()
            return state is BreakerState.CLOSED or (
                state is BreakerState.HALF_OPEN and not self._probing
            )

    def acquire(self) -> bool:
        """Let one attempt through, if it may; once cooled down, only one (the probe)."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def record(self, result: DriverResult) -> None:
        failed = result.error is not None and counts_against(result.error)
        with self._lock:
            self._recent.append(failed)
            probing, self._probing = self._probing, False
            if not failed:
                self._failures = 0
                self._opened_at = None
                return
            self._failures += 1
            if probing or self._failures >= self.threshold:
                self._opened_at = self.clock()

    def release(self) -> None:
        """An attempt let through ended without an answer to judge by."""
        with self._lock:
            self._probing = False

    def status(self) -> BreakerStatus:
        with self._lock:
            outcomes = len(self._recent)
            rate = sum(self._recent) / outcomes if outcomes else 0.0
            return BreakerStatus(self.driver, self._state(), self._failures, rate, outcomes)


class _Tracked:
    """A member driver whose attempts feed its breaker."""

    def __init__(self, driver: Driver, breaker: Breaker) -> None:
        self.driver = driver
        self.breaker = breaker

    @property
    def name(self) -> str:
        return self.driver.name

    def unavailable_reason(self, channel: Channel) -> str | None:
        return self.driver.unavailable_reason(channel)

    def validate(self, message: OutboundMessage) -> None:
        self.driver.validate(message)

    def send(self, message: OutboundMessage) -> DriverResult:
        try:
            result = self.driver.send(message)
        except BaseException:
            self.breaker.release()  # a bug, not an answer: no verdict on the provider
            raise
        self.breaker.record(result)
        return result


class FailoverDriver:
    """The ordered drivers of one channel, each behind its breaker."""

    def __init__(
        self,
        drivers: Sequence[Driver],
        breakers: dict[str, Breaker],
    ) -> None:
        if len(drivers) < 2:
            raise ValueError("a failover list needs at least two drivers")
        self.members = list(drivers)
        self.breakers = breakers

    @property
    def name(self) -> str:
        return self.members[0].name

    @property
    def names(self) -> list[str]:
        return [driver.name for driver in self.members]

    def unavailable_reason(self, channel: Channel) -> str | None:
        reasons = [driver.unavailable_reason(channel) for driver in self.members]
        if any(reason is None for reason in reasons):
            return None
        return "; ".join(reason for reason in reasons if reason)

    def validate(self, message: OutboundMessage) -> None:
        """Refuse what none of the drivers can send (the first one's refusal)."""
        first: Exception | None = None
        for driver in self.members:
            try:
                driver.validate(message)
            except Exception as error:
                first = first or error
            else:
                return
        assert first is not None
        raise first

    def send(self, message: OutboundMessage) -> DriverResult:
        return self.choose(message).send(message)

    def _can_send(self, driver: Driver, message: OutboundMessage) -> bool:
        if driver.unavailable_reason(message.channel) is not None:
            return False
        try:
            driver.validate(message)
        except Exception:
            return False
        return True

    def choose(self, message: OutboundMessage, avoid: str | None = None) -> Driver:
        """The driver of this attempt: the first that can send the message and whose
        breaker lets it through, others before ``avoid`` (the driver the previous attempt
        failed on). When every breaker is shut, the first capable driver all the same: an
        attempt that may fail beats none."""
        capable = [d for d in self.members if self._can_send(d, message)]
        ordered = [d for d in capable if d.name != avoid] + [d for d in capable if d.name == avoid]
        for driver in ordered:
            breaker = self.breakers[driver.name]
            if breaker.acquire():
                return _Tracked(driver, breaker)
        fallback = ordered[0] if ordered else self.members[0]
        return _Tracked(fallback, self.breakers[fallback.name])

    def planned(self, channel: Channel, avoid: str | None = None) -> str:
        """The member :meth:`choose` would likely pick, without taking a probe."""
        available = [d for d in self.members if d.unavailable_reason(channel) is None]
        ordered = [d for d in available if d.name != avoid] + [
            d for d in available if d.name == avoid
        ]
        for driver in ordered:
            if self.breakers[driver.name].allows():
                return driver.name
        return (ordered or self.members)[0].name

    def can_take_over(self, failed: str, channel: Channel) -> bool:
        """Whether a driver other than ``failed`` is available and healthy now, so that a
        retry may go to it at once rather than after a backoff."""
        return any(
            driver.name != failed
            and driver.unavailable_reason(channel) is None
            and self.breakers[driver.name].allows()
            for driver in self.members
        )


def monotonic() -> float:
    return time.monotonic()


def choose_driver(driver: Driver, message: OutboundMessage, avoid: str | None = None) -> Driver:
    """The driver to make an attempt with: the channel's own, or the one its failover list
    picks."""
    if isinstance(driver, FailoverDriver):
        return driver.choose(message, avoid)
    return driver


def planned_driver(driver: Driver, channel: Channel, avoid: str | None = None) -> str:
    """The name of the driver an attempt about to be claimed is expected to go to (without
    taking a breaker's probe: :func:`choose_driver` makes the choice at the attempt)."""
    if isinstance(driver, FailoverDriver):
        return driver.planned(channel, avoid)
    return driver.name


def reroutes(driver: Driver | None, failed: str, error: DriverError, channel: Channel) -> bool:
    """Whether the retry after ``error`` on ``failed`` can go at once to another driver of
    the channel's failover list: the error is about the provider, not the recipient, and
    another member is available and healthy."""
    return (
        isinstance(driver, FailoverDriver)
        and fails_over(error)
        and error.code != "driver_unavailable"
        and driver.can_take_over(failed, channel)
    )


def breaker_statuses(drivers: Sequence[Driver]) -> list[BreakerStatus]:
    """Every breaker of these channel drivers, once each."""
    seen: dict[str, BreakerStatus] = {}
    for driver in drivers:
        if isinstance(driver, FailoverDriver):
            for name, breaker in driver.breakers.items():
                seen.setdefault(name, breaker.status())
    return list(seen.values())
