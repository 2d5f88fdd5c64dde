"""The consent ledger of one number: what blocks which send, idempotent changes, and the
history every change leaves."""

from __future__ import annotations

from conversa.domain.recipient import (
    OPTED_IN,
    OPTED_OUT,
    UNKNOWN,
    Recipient,
    history_of,
    recipient_id_for,
)

NUMBER = "+15551234567"


def test_a_new_recipient_is_unknown_everywhere_and_blocks_nothing() -> None:
    recipient = Recipient.register(NUMBER)
    assert recipient.id == recipient_id_for(NUMBER)
    assert recipient.as_table() == {
        "sms": {"all": UNKNOWN, "marketing": UNKNOWN},
        "whatsapp": {"all": UNKNOWN, "marketing": UNKNOWN},
    }
    assert not recipient.blocks("sms", "marketing")
    assert not recipient.blocks("whatsapp", "transactional")


def test_an_opt_out_of_all_on_one_channel_blocks_every_send_there_and_nothing_elsewhere() -> None:
    recipient = Recipient.register(NUMBER)
    assert recipient.opt_out("sms", "all", "keyword", keyword="STOP")
    assert recipient.blocks("sms", "transactional")
    assert recipient.blocks("sms", "marketing")
    assert not recipient.blocks("whatsapp", "marketing")
    assert recipient.state("sms", "all") == OPTED_OUT


def test_a_marketing_opt_out_blocks_only_marketing() -> None:
    recipient = Recipient.register(NUMBER)
    assert recipient.opt_out("whatsapp", "marketing", "provider", code="131050")
    assert recipient.blocks("whatsapp", "marketing")
    assert not recipient.blocks("whatsapp", "transactional")
    assert not recipient.blocks("sms", "marketing")


def test_recording_what_already_holds_records_nothing() -> None:
    recipient = Recipient.register(NUMBER)
    assert recipient.opt_out("sms", "all", "keyword", keyword="STOP")
    version = len(recipient.collect_events())
    assert not recipient.opt_out("sms", "all", "keyword", keyword="STOP")
    assert not recipient.opt_out("sms", "all", "import")
    assert recipient.collect_events() == []
    assert version == 2  # registered, opted out
    assert recipient.opt_in("sms", "all", "keyword", keyword="START")
    assert not recipient.opt_in("sms", "all", "api")
    assert not recipient.blocks("sms", "transactional")


def test_the_channel_all_changes_both_channels_and_only_when_one_differs() -> None:
    recipient = Recipient.register(NUMBER)
    assert recipient.opt_out("sms", "all", "keyword")
    assert recipient.opt_out("all", "all", "api", by="ops")
    assert recipient.blocks("whatsapp", "transactional")
    assert not recipient.opt_out("whatsapp", "all", "api")
    assert not recipient.opt_out("all", "all", "api")


def test_opting_in_to_all_ends_a_marketing_opt_out_but_not_the_other_way_round() -> None:
    recipient = Recipient.register(NUMBER)
    recipient.opt_out("whatsapp", "marketing", "provider")
    assert recipient.opt_in("whatsapp", "all", "keyword", keyword="START")
    assert recipient.state("whatsapp", "marketing") == OPTED_IN
    assert not recipient.blocks("whatsapp", "marketing")
    recipient.opt_out("sms", "all", "keyword")
    assert recipient.opt_in("sms", "marketing", "api")
    assert recipient.blocks("sms", "marketing")  # the all opt-out stands


def test_the_history_holds_every_change_with_its_cause_oldest_first() -> None:
    recipient = Recipient.register(NUMBER)
    recipient.opt_out("sms", "all", "keyword", keyword="STOP")
    recipient.opt_in("sms", "all", "api", by="crm")
    history = history_of(recipient.collect_events())
    assert [(h.type, h.source, h.keyword, h.by) for h in history] == [
        (OPTED_OUT, "keyword", "STOP", None),
        (OPTED_IN, "api", None, "crm"),
    ]
    assert history[0].occurred_at <= history[1].occurred_at
