"""The Recipients page in a real browser, from the keyboard: look a number up, opt it out
of SMS, and the next SMS from the API is refused; opt it back in."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.console.conftest import Console, Shot, sign_in, watch_dialogs

NUMBER = "+447700900888"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_an_operator_opts_a_recipient_out(console: Console, page: Page, screenshot: Shot) -> None:
    dialogs = watch_dialogs(page)
    sign_in(page, console)
    page.get_by_role("link", name="Recipients", exact=True).click()
    page.get_by_label("Recipient number").fill("+44 7700 900 888")
    page.keyboard.press("Enter")
    sms_all = page.locator('#consent tr[data-channel="sms"] td[data-scope="all"]')
    expect(sms_all.locator(".consent")).to_have_text("unknown")

    opt_out = page.get_by_role("button", name="Opt out of sms (all)")
    opt_out.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_contain_text(f"by {console.token_name}")
    expect(sms_all.locator(".consent")).to_have_text("opted out")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("api")
    expect(history.first).to_contain_text(console.token_name)
    screenshot(page, "recipients")

    refused = console.send(NUMBER, "A text", channel="sms")
    assert refused["status"] == "failed", refused
    assert refused["error"]["code"] == "recipient_opted_out"

    page.get_by_role("button", name="Opt in to sms (all)").click()
    expect(sms_all.locator(".consent")).to_have_text("opted in")
    assert console.send(NUMBER, "A text again", channel="sms")["status"] == "sent"
    assert NUMBER not in page.locator("main").inner_text()
    assert dialogs == []
