"""The ApiToken aggregate and its name index: ids, names, revocation, replay."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from uuid import UUID, uuid5

import pytest
from eventsourcing.domain import BaseAggregate, CanMutateAggregate

from conversa.domain.errors import InvalidRequest
from conversa.domain.token import (
    TOKEN_NAMESPACE,
    ApiToken,
    InvalidTokenName,
    TokenName,
    TokenNameTaken,
    parse_token_name,
    secret_digest,
    token_id_for,
    token_name_id_for,
)

SECRET = "cnv_not-a-real-secret-but-long-enough-for-a-test"


def replay(events: Sequence[CanMutateAggregate[UUID]]) -> BaseAggregate[UUID]:
    aggregate: BaseAggregate[UUID] | None = None
    for event in events:
        aggregate = event.mutate(aggregate)
    assert aggregate is not None
    return aggregate


def is_revoked(token: ApiToken) -> bool:
    """Read through a call, so mypy does not keep an earlier narrowing of the attribute."""
    return token.revoked


def test_ids_are_derived_from_the_secret_digest_and_the_name() -> None:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert secret_digest(SECRET) == digest
    assert token_id_for(SECRET) == uuid5(TOKEN_NAMESPACE, "secret:" + digest)
    assert token_id_for(SECRET) == token_id_for(SECRET)
    assert token_id_for(SECRET) != token_id_for(SECRET + "x")
    assert token_name_id_for("ci-bot") == uuid5(TOKEN_NAMESPACE, "name:ci-bot")
    assert token_name_id_for("ci-bot") != token_name_id_for("CI-bot")


def test_issuing_makes_a_token_and_the_claim_on_its_name() -> None:
    token, claim = ApiToken.issue("ci-bot", SECRET)
    assert token.id == token_id_for(SECRET)
    assert token.name == "ci-bot"
    assert is_revoked(token) is False
    assert token.revoked_on is None
    assert token.created_on == token.modified_on
    assert isinstance(claim, TokenName)
    assert claim.id == token_name_id_for("ci-bot")
    assert claim.token_id == token.id

    [created] = token.collect_events()
    assert isinstance(created, ApiToken.Created)
    assert created.name == "ci-bot"
    [claimed] = claim.collect_events()
    assert isinstance(claimed, TokenName.Claimed)
    assert claimed.token_id == token.id


def test_the_secret_is_not_in_any_event() -> None:
    token, claim = ApiToken.issue("ci-bot", SECRET)
    token.revoke()
    for event in [*token.collect_events(), *claim.collect_events()]:
        assert SECRET not in repr(event)
        assert secret_digest(SECRET) not in repr(event)


def test_revoking_is_recorded_once_and_is_final() -> None:
    token, _ = ApiToken.issue("ci-bot", SECRET)
    assert token.revoke() is True
    assert is_revoked(token) is True
    assert token.revoked_on == token.modified_on
    assert token.revoked_on is not None and token.revoked_on >= token.created_on
    assert token.revoke() is False
    events = token.collect_events()
    assert [type(e) for e in events] == [ApiToken.Created, ApiToken.Revoked]
    assert token.version == 2


def test_a_token_is_rebuilt_from_its_events() -> None:
    token, claim = ApiToken.issue("ci-bot", SECRET)
    token.revoke()
    replayed = replay(token.collect_events())
    assert isinstance(replayed, ApiToken)
    assert (replayed.id, replayed.name, replayed.revoked) == (token.id, "ci-bot", True)
    assert replayed.revoked_on == token.revoked_on
    assert replayed.created_on == token.created_on

    replayed_claim = replay(claim.collect_events())
    assert isinstance(replayed_claim, TokenName)
    assert replayed_claim.token_id == token.id


@pytest.mark.parametrize("name", ["a", "ci-bot", "Deploy_2024.v1", "-", "x" * 64, "..."])
def test_good_names(name: str) -> None:
    assert parse_token_name(name) == name
    token, _ = ApiToken.issue(name, SECRET)
    assert token.name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "ci bot",
        "ci/bot",
        "ci-bot\n",
        " ci",
        "café",
        "ci:bot",
        "\uff41",
        "\u0661",
        None,
        42,
    ],
)
def test_bad_names_are_refused_naming_the_field(name: object) -> None:
    with pytest.raises(InvalidTokenName) as caught:
        parse_token_name(name)
    assert isinstance(caught.value, InvalidRequest)
    assert caught.value.field == "name"
    assert caught.value.code == "invalid_token_name"
    assert "1 to 64 characters" in caught.value.message


def test_issuing_with_a_bad_name_makes_nothing() -> None:
    with pytest.raises(InvalidTokenName):
        ApiToken.issue("ci bot", SECRET)
    with pytest.raises(InvalidTokenName):
        TokenName.claim("ci bot", token_id_for(SECRET))


def test_a_taken_name_says_that_revoked_names_stay_taken() -> None:
    error = TokenNameTaken("ci-bot")
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.code, error.name) == ("name", "token_name_taken", "ci-bot")
    assert "ci-bot" in error.message
    assert "revoked" in error.message
