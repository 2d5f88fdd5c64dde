"""``conversa conversations list|show`` as a real process, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
from tests.fakes.inbound import BUSINESS, CONTACT
from tests.support import conversa, make_settings


def test_list_and_show_a_conversation(backend_url: str, tmp_path: Path) -> None:
    settings = make_settings(backend_url)
    migrate(settings)
    with bootstrap(settings) as service:
        service.send("whatsapp", CONTACT, {"body": "Order shipped"}, {"from": BUSINESS})
        service.record_inbound(
            InboundReport(
                provider="whatsapp_cloud",
                provider_message_id="wamid.CLI",
                channel=Channel.WHATSAPP,
                sender=CONTACT,
                recipient=BUSINESS,
                body="Thanks!",
            )
        )
        service.projector().catch_up()

    listed = conversa("conversations", "list", "--json", url=backend_url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert document["meta"]["total"] == 1
    [conversation] = document["data"]
    assert (conversation["contact"], conversation["inbound_count"]) == (CONTACT, 1)
    assert conversation["window_expires_at"] is not None

    text = conversa("conversations", "list", "--contact", CONTACT, url=backend_url, cwd=tmp_path)
    assert text.returncode == 0 and conversation["id"] in text.stdout

    shown = conversa("conversations", "show", conversation["id"], url=backend_url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "-> " in lines[-2] and "Order shipped" in lines[-2]
    assert "<- received" in lines[-1] and "Thanks!" in lines[-1]

    missing = conversa(
        "conversations",
        "show",
        "00000000-0000-0000-0000-000000000000",
        url=backend_url,
        cwd=tmp_path,
    )
    assert missing.returncode == 1
    assert "no conversation" in missing.stderr
