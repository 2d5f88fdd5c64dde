"""Circuit breakers and the choice of a failover list's driver, with a hand-driven clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import uuid4

import pytest

from conversa.app.failover import (
    Breaker,
    BreakerState,
    FailoverDriver,
    breaker_statuses,
    choose_driver,
    planned_driver,
    reroutes,
)
from conversa.app.ports import DriverError, DriverResult, OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Template
from conversa.domain.errors import InvalidContent
from conversa.domain.phone import PhoneNumber

OK = DriverResult(provider_message_id="id")
DOWN = DriverResult(error=DriverError("x_http_503", "down", transient=True))
AUTH = DriverResult(error=DriverError("x_20003", "auth", reroutable=True))
HI = Body("hi")
RECIPIENT = DriverResult(error=DriverError("x_21211", "invalid number"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stub:
    """A driver answering from a list, and refusing templates when told to."""

    name: str
    answers: list[DriverResult] = field(default_factory=list)
    sent: int = 0
    unavailable: str | None = None
    bodies_only: bool = False

    def unavailable_reason(self, channel: Channel) -> str | None:  # noqa: ARG002
        return self.unavailable

    def validate(self, message: OutboundMessage) -> None:
        if self.bodies_only and not isinstance(message.content, Body):
            raise InvalidContent("template", "bodies only")

    def send(self, message: OutboundMessage) -> DriverResult:  # noqa: ARG002
        self.sent += 1
        return self.answers.pop(0) if self.answers else OK


def message(content: Body | Template = HI) -> OutboundMessage:
    return OutboundMessage(uuid4(), Channel.SMS, PhoneNumber.parse("+15551234567"), None, content)


def route(*stubs: Stub, clock: Clock, threshold: int = 3) -> FailoverDriver:
    breakers = {
        s.name: Breaker(s.name, threshold=threshold, cooldown=30, clock=clock) for s in stubs
    }
    return FailoverDriver(list(stubs), breakers)


def test_a_breaker_opens_after_consecutive_failures_and_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = Breaker("twilio", threshold=3, cooldown=30, clock=clock)
    for result in (DOWN, DOWN, OK, DOWN, DOWN):  # a success resets the count
        assert breaker.acquire()
        breaker.record(result)
    assert breaker.state() is BreakerState.CLOSED
    breaker.record(RECIPIENT)  # about the recipient: the provider answered
    assert breaker.status().consecutive_failures == 0
    for _ in range(3):
        breaker.record(AUTH)
    assert breaker.state() is BreakerState.OPEN and not breaker.acquire()
    clock.now += 29.9
    assert not breaker.acquire()
    clock.now += 0.1
    assert breaker.state() is BreakerState.HALF_OPEN
    assert breaker.acquire()  # the probe
    assert not breaker.acquire() and not breaker.allows()  # one at a time
    breaker.record(DOWN)  # the probe failed: open for another cooldown
    assert breaker.state() is BreakerState.OPEN
    clock.now += 30
    assert breaker.acquire()
    breaker.record(OK)
    assert breaker.state() is BreakerState.CLOSED and breaker.acquire()
    status = breaker.status()
    assert status.outcomes == 11 and status.error_rate == pytest.approx(8 / 11)


def test_a_probe_that_raises_gives_the_probe_back() -> None:
    clock = Clock()
    twilio, vonage = Stub("twilio"), Stub("vonage")
    failover = route(twilio, vonage, clock=clock, threshold=1)
    failover.breakers["twilio"].record(DOWN)
    clock.now += 30

    def boom(_message: OutboundMessage) -> DriverResult:
        raise RuntimeError("bug")

    twilio.send = boom  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError):
        failover.choose(message()).send(message())
    assert failover.breakers["twilio"].allows()


def test_the_first_healthy_capable_driver_is_chosen() -> None:
    clock = Clock()
    twilio, vonage = Stub("twilio", answers=[DOWN] * 3), Stub("vonage", bodies_only=True)
    failover = route(twilio, vonage, clock=clock)
    assert failover.name == "twilio"
    for _ in range(3):
        assert failover.send(message()).error is not None
    assert failover.choose(message()).name == "vonage"  # twilio's breaker is open
    assert planned_driver(failover, Channel.SMS) == "vonage"
    # A template Vonage cannot send still goes to Twilio, open breaker or not.
    assert failover.choose(message(Template("order_shipped"))).name == "twilio"
    # Every breaker shut: the first capable driver all the same.
    for _ in range(3):
        failover.breakers["vonage"].record(DOWN)
    assert failover.choose(message()).name == "twilio"
    assert {s.driver: s.state for s in breaker_statuses([failover, failover])} == {
        "twilio": BreakerState.OPEN,
        "vonage": BreakerState.OPEN,
    }


def test_a_retry_avoids_the_driver_that_failed_and_skips_the_backoff() -> None:
    clock = Clock()
    twilio, vonage = Stub("twilio"), Stub("vonage")
    failover = route(twilio, vonage, clock=clock)
    assert failover.choose(message(), avoid="twilio").name == "vonage"
    assert planned_driver(failover, Channel.SMS, avoid="twilio") == "vonage"
    assert reroutes(failover, "twilio", DOWN.error or DriverError("", ""), Channel.SMS)
    assert reroutes(failover, "twilio", AUTH.error or DriverError("", ""), Channel.SMS)
    assert not reroutes(failover, "twilio", RECIPIENT.error or DriverError("", ""), Channel.SMS)
    assert not reroutes(twilio, "twilio", DOWN.error or DriverError("", ""), Channel.SMS)
    vonage.unavailable = "needs CONVERSA_VONAGE_API_KEY"
    assert not reroutes(failover, "twilio", DOWN.error or DriverError("", ""), Channel.SMS)
    assert failover.choose(message(), avoid="twilio").name == "twilio"
    assert choose_driver(twilio, message()) is twilio


def test_availability_and_validation_of_the_list() -> None:
    clock = Clock()
    twilio = Stub("twilio", unavailable="needs CONVERSA_TWILIO_SMS_FROM", bodies_only=True)
    vonage = Stub("vonage", bodies_only=True)
    failover = route(twilio, vonage, clock=clock)
    assert failover.unavailable_reason(Channel.SMS) is None
    vonage.unavailable = "needs CONVERSA_VONAGE_API_KEY"
    reason = failover.unavailable_reason(Channel.SMS)
    assert reason is not None and "TWILIO" in reason and "VONAGE" in reason
    failover.validate(message())
    with pytest.raises(InvalidContent):
        failover.validate(message(Template("order_shipped")))
    with pytest.raises(ValueError):
        FailoverDriver([twilio], {})
