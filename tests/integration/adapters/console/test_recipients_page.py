"""The Recipients page through the real application, on SQLite and PostgreSQL: look a
number up in any spelling, opt it out of SMS (source api, the operator's token name), see
the next SMS refused and WhatsApp still allowed, opt it back in; a bad number or a post
without the form's token changes nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from bench.console_session import signed_in_client
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.settings import Settings
from conversa.domain.phone import PhoneNumber
from tests.support import make_settings

NUMBER = "+447700900123"
SPELLED = "+44 7700 900-123"


def test_an_operator_opts_a_recipient_out_and_in(backend_url: str) -> None:
    settings: Settings = make_settings(
        backend_url, console_secret="console-secret-for-tests-0123456789abcdef"
    )
    migrate(settings)
    with bootstrap(settings) as service, signed_in_client(service, "alice") as client:
        looked_up = client.get("/conversa/console/recipients", params={"number": SPELLED})
        assert looked_up.status_code == 200
        html = looked_up.text
        masked = PhoneNumber.parse(NUMBER).masked()
        assert f'id="recipient-number">{masked}</span>' in html and NUMBER not in masked
        assert html.count('class="consent consent-unknown"') == 4
        assert "No consent change recorded" in html

        form = {"number": NUMBER, "channel": "sms", "scope": "all", "status": "opted_out"}
        refused = client.post("/conversa/console/recipients/consent", data=form)
        assert refused.status_code == 403
        assert service.consent.view(NUMBER).history == []

        done = client.post(
            "/conversa/console/recipients/consent", data={**form, "csrf_token": client.csrf}
        )
        assert done.status_code == 303
        query = parse_qs(urlsplit(done.headers["location"]).query)
        assert query["changed"] == ["opted_out"] and query["number"] == [NUMBER]
        (change,) = service.consent.view(NUMBER).history
        assert (change.type, change.channel, change.scope, change.source, change.by) == (
            "opted_out",
            "sms",
            "all",
            "api",
            "alice",
        )
        page = client.get(done.headers["location"]).text
        assert "Opted out: sms, scope all, recorded as source api by alice." in page
        assert page.count('class="consent consent-opted_out"') >= 2  # the table and history
        assert "Opt in to sms (all)" in page

        sms = service.send("sms", NUMBER, {"body": "hello"})
        assert sms.status == "failed" and sms.error is not None
        assert sms.error["code"] == "recipient_opted_out"
        assert service.send("whatsapp", NUMBER, {"body": "hello"}).ok

        back = {**form, "status": "opted_in", "csrf_token": client.csrf}
        assert client.post("/conversa/console/recipients/consent", data=back).status_code == 303
        assert service.send("sms", NUMBER, {"body": "hello again"}).ok
        assert [c.type for c in service.consent.view(NUMBER).history] == [
            "opted_out",
            "opted_in",
        ]

        bad = client.get("/conversa/console/recipients", params={"number": "not a number"})
        assert bad.status_code == 422 and 'role="alert"' in bad.text
