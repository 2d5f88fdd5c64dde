"""The status is the join of all reports, whatever their order and repetitions."""

from __future__ import annotations

import random
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from conversa.domain.message import Message
from conversa.domain.status import Status
from tests.support import queued_message

REPORTABLE = [Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED, Status.UNDELIVERED]
reports_strategy = st.lists(st.sampled_from(REPORTABLE), max_size=15)


def fresh() -> Message:
    return queued_message()


def apply_all(reports: Sequence[Status]) -> Message:
    message = fresh()
    for status in reports:
        message.record_report(status)
    return message


def replay(events: Sequence[CanMutateAggregate[UUID]]) -> Message:
    aggregate: BaseAggregate[UUID] | None = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Message)
    return aggregate


def strict_increases(reports: Sequence[Status]) -> int:
    current, count = Status.QUEUED, 0
    for status in reports:
        if status.rank > current.rank:
            current, count = status, count + 1
    return count


def test_rank_follows_the_documented_order() -> None:
    order = [
        Status.QUEUED,
        Status.SENT,
        Status.DELIVERED,
        Status.READ,
        Status.UNDELIVERED,
        Status.FAILED,
    ]
    assert [s.rank for s in order] == list(range(len(order)))
    assert Status.UNDELIVERED.merge(Status.FAILED) is Status.FAILED
    assert Status.FAILED.merge(Status.UNDELIVERED) is Status.FAILED


@settings(max_examples=200, deadline=None)
@given(reports=reports_strategy, rnd=st.randoms(use_true_random=False))
def test_final_status_is_the_join_whatever_the_order(
    reports: list[Status], rnd: random.Random
) -> None:
    message = apply_all(reports)
    expected = max([Status.QUEUED, *reports], key=lambda s: s.rank)
    assert message.status is expected

    shuffled = list(reports)
    rnd.shuffle(shuffled)
    for other_order in (shuffled, sorted(reports, key=lambda s: s.rank), reports[::-1]):
        assert apply_all(other_order).status is expected


@settings(max_examples=200, deadline=None)
@given(
    pair=reports_strategy.flatmap(
        lambda reports: st.tuples(st.just(reports), st.permutations(reports))
    )
)
def test_any_permutation_gives_the_same_status(pair: tuple[list[Status], list[Status]]) -> None:
    reports, permuted = pair
    assert apply_all(reports).status is apply_all(permuted).status


@settings(max_examples=200, deadline=None)
@given(reports=reports_strategy)
def test_only_strict_increases_are_recorded_and_replay_agrees(reports: list[Status]) -> None:
    message = fresh()
    recorded = [message.record_report(status) for status in reports]
    increases = strict_increases(reports)
    assert sum(recorded) == increases

    events = message.collect_events()
    assert isinstance(events[0], Message.Queued)
    assert len(events) - 1 == increases
    assert message.version == len(events)

    rebuilt = replay(events)
    assert rebuilt.status is message.status
    assert rebuilt.error == message.error
    assert rebuilt.attempts == message.attempts == 0  # reports are not attempts
