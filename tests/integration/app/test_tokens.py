"""API tokens, told as one story, on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import secrets

import pytest

import conversa.app.tokens
from conversa.app.bootstrap import bootstrap
from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from conversa.app.tokens import TokenNameTaken, TokenNotFound
from conversa.domain.token import InvalidTokenName, secret_digest, token_id_for


def head(service: ConversaService) -> int:
    return service.app.recorder.max_notification_id() or 0


def event_count(service: ConversaService) -> int:
    return len(stored_states(service))


def stored_states(service: ConversaService) -> list[bytes]:
    return [n.state for n in service.app.recorder.select_notifications(start=None, limit=100_000)]


def test_a_token_is_created_used_refused_twice_and_revoked(
    service: ConversaService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = service.tokens

    info, secret = tokens.create("ci-bot")
    assert secret.startswith("cnv_")
    assert len(secret) == len("cnv_") + 43  # 32 random bytes, URL-safe base64
    assert (info.name, info.active, info.revoked_at) == ("ci-bot", True, None)
    assert info.id == token_id_for(secret)
    assert head(service) == 2  # the token and the claim on its name, in one transaction

    assert tokens.authenticate(secret) == info
    last = "A" if secret[-1] != "A" else "B"
    for wrong in (
        secret[:-1] + last,  # well formed, unknown
        "cnv_" + "x" * 43,
        "",
        "not-a-token",
        secret + "\n",
        " " + secret,
        "Bearer " + secret,
        "cnv_" + "x" * 500,
    ):
        assert tokens.authenticate(wrong) is None, wrong

    assert tokens.list() == [info]
    deploy, deploy_secret = tokens.create("deploy")
    assert deploy_secret != secret
    assert tokens.list() == [info, deploy]  # oldest first

    before = head(service)
    with pytest.raises(TokenNameTaken) as taken:
        tokens.create("ci-bot")
    assert taken.value.field == "name"
    assert taken.value.code == "token_name_taken"
    with pytest.raises(InvalidTokenName):
        tokens.create("ci bot")
    assert head(service) == before  # nothing new stored
    assert tokens.list() == [info, deploy]

    revoked = tokens.revoke("ci-bot")
    assert (revoked.id, revoked.name, revoked.created_at) == (info.id, "ci-bot", info.created_at)
    assert revoked.active is False
    assert revoked.revoked_at is not None and revoked.revoked_at >= info.created_at
    assert tokens.authenticate(secret) is None
    assert tokens.authenticate(deploy_secret) == deploy  # the other token still works

    after_revoke = head(service)
    assert event_count(service) == 5  # two tokens and their claims (2 x 2), one revocation
    assert tokens.revoke("ci-bot") == revoked  # a second revoke changes nothing
    assert head(service) == after_revoke

    with pytest.raises(TokenNameTaken) as reused:
        tokens.create("ci-bot")  # a revoked token's name stays taken
    assert "revoked" in reused.value.message
    with pytest.raises(TokenNotFound):
        tokens.revoke("nobody")
    with pytest.raises(InvalidTokenName):
        tokens.revoke("no body")
    assert head(service) == after_revoke

    listed = tokens.list()
    assert listed == [revoked, deploy]
    assert [(t.name, t.active) for t in listed] == [("ci-bot", False), ("deploy", True)]

    # Neither the secrets nor their digests are stored or logged. The scan sees plain JSON
    # (the name is found in it), so not finding the secrets there means something.
    states = stored_states(service)
    assert len(states) == 5
    assert any(b"ci-bot" in state for state in states)
    for leaked in (secret, deploy_secret, secret_digest(secret), secret_digest(deploy_secret)):
        assert not any(leaked.encode() in state for state in states)
        assert leaked not in caplog.text
    assert "ci-bot" in caplog.text  # logging was captured


def test_a_lost_name_race_stores_nothing_of_the_losing_token(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.tokens.create("ci-bot")
    before = head(service)

    def predictable(nbytes: int | None = None) -> str:
        return "y" * 43

    monkeypatch.setattr(secrets, "token_urlsafe", predictable)
    with pytest.raises(TokenNameTaken):
        service.tokens.create("ci-bot")
    # The token itself was valid and new: only the name claim conflicted, and the one
    # transaction took both down together.
    assert token_id_for("cnv_" + "y" * 43) not in service.app.repository
    assert head(service) == before


def test_tokens_outlive_the_process_and_page_through_the_list(
    service: ConversaService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversa.app.tokens, "LIST_PAGE", 2)
    created = [service.tokens.create(f"token-{i}") for i in range(5)]
    service.tokens.revoke("token-3")
    with bootstrap(settings) as restarted:
        listed = restarted.tokens.list()
        assert [t.name for t in listed] == [f"token-{i}" for i in range(5)]
        assert [t.active for t in listed] == [True, True, True, False, True]
        assert [t.id for t in listed] == [info.id for info, _ in created]
        for i, (info, secret) in enumerate(created):
            expected = None if i == 3 else info
            assert restarted.tokens.authenticate(secret) == expected


def test_tokens_share_the_store_without_disturbing_the_message_log(
    service: ConversaService,
) -> None:
    service.tokens.create("ci-bot")
    sent = service.send("sms", "+15551234567", {"body": "hello"})
    service.tokens.revoke("ci-bot")
    projector = service.projector()
    assert projector.catch_up() == head(service)  # every position passed, tokens included
    assert projector.status().lag == 0
    page = service.list_messages(MessageQuery())
    assert [row.id for row in page.rows] == [sent.message_id]
    assert page.total == 1
