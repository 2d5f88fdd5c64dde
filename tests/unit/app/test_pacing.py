"""The per-driver pacer, on a hand-driven clock: a burst becomes a steady stream."""

from __future__ import annotations

import pytest

from conversa.app.pacing import Pacer, pacers_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_let_through_at_the_rate_and_no_faster() -> None:
    clock = Clock()
    pacer = Pacer(80, clock=clock)  # Meta's 80 messages a second per number
    assert pacer.burst == 8
    # 10,000 messages want to go at once: a tenth of a second's worth goes now.
    assert pacer.take(10_000) == 8
    assert pacer.take(10_000) == 0
    assert pacer.delay() == pytest.approx(1 / 80)
    # Then 80 a second, whatever the demand, over every second that follows.
    sent = 0
    for _ in range(1000):  # ten seconds in steps of 10 ms
        clock.now += 0.01
        sent += pacer.take(10_000)
    assert sent == pytest.approx(800, abs=1)


def test_an_idle_pacer_saves_up_no_more_than_its_burst() -> None:
    clock = Clock()
    pacer = Pacer(1, clock=clock)  # Twilio's one message a second per long code
    assert pacer.burst == 1
    assert pacer.take(5) == 1
    clock.now += 0.5
    assert pacer.take(5) == 0
    assert pacer.delay() == pytest.approx(0.5)
    clock.now += 3600  # an hour idle
    assert pacer.take(5) == 1
    assert pacer.take(5) == 0


def test_only_drivers_with_a_limit_are_paced() -> None:
    pacers = pacers_of({"log": None, "twilio": 1.0, "whatsapp_cloud": 80.0})
    assert sorted(pacers) == ["twilio", "whatsapp_cloud"]
    with pytest.raises(ValueError):
        Pacer(0)
