"""The Overview page through the real application, on SQLite and PostgreSQL: it shows the
hour's sends and failures with the chart, the projection, a dead letter with its replay
button; a replay without the form's token is refused, with it the letter is replayed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.console_session import signed_in_client
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.subscribers import SubscriberRunner
from tests.support import make_settings

SUBSCRIBER = "tests.fakes.subscribers:record"
BODY = "<script>alert(1)</script>"


def test_the_overview_shows_the_day_and_replays_a_dead_letter(
    backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("CONVERSA_TEST_EVENTS_FILE", str(events_file))
    monkeypatch.setenv("CONVERSA_TEST_FAIL", "1")
    settings = make_settings(
        backend_url,
        subscribers=SUBSCRIBER,
        subscriber_max_attempts="1",
        subscriber_retry_base_seconds="0.01",
        console_secret="console-secret-for-tests-0123456789abcdef",
    )
    migrate(settings)
    with bootstrap(settings) as service:
        sent = [service.send("sms", "+15551234567", {"body": BODY})]
        (subscription,) = service.subscriptions
        SubscriberRunner(subscription, service.feed, service.subscriber_store).run_once()
        sent += [service.send("sms", "+15551234567", {"body": BODY}) for _ in range(2)]
        service.projector().catch_up()
        (letter,) = service.subscriber_store.dead_letters()

        with signed_in_client(service, "alice") as client:
            service.projector().catch_up()  # past the sign-in token's events too
            page = client.get("/conversa/console/overview")
            assert page.status_code == 200
            html = page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert '<svg xmlns="http://www.w3.org/2000/svg"' in html
            assert '<title id="hourly-title">' in html
            assert re.search(r'id="total-sent">\s*3\s*</span>', html)
            assert '<th scope="row">log</th>' in html  # the driver's row
            assert f"dead-letters/{letter.id}/replay" in html
            assert letter.event["message_id"] == str(sent[0].message_id)
            assert f'href="/conversa/console/messages/{sent[0].message_id}"' in html
            assert "Lag <strong>0</strong>" in html
            assert "+15551234567" not in html

            url = f"/conversa/console/overview/dead-letters/{letter.id}/replay"
            assert client.post(url, data={}).status_code == 403
            assert service.subscriber_store.dead_letters() == [letter]

            monkeypatch.delenv("CONVERSA_TEST_FAIL")
            done = client.post(url, data={"csrf_token": client.csrf})
            assert done.status_code == 303
            assert "replayed=delivered" in done.headers["location"]
            assert service.subscriber_store.dead_letters() == []
            after = client.get(done.headers["location"])
            assert f"Dead letter {letter.id} was delivered" in after.text
            assert "No dead letters." in after.text
