"""An operator's day in the console, in a real browser: sign in, watch a message sent from
the API appear live and its delivery report arrive, read its timeline, answer the customer
in the conversation (and see a reply refused outside WhatsApp's window), reveal a number,
sign out."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.console.conftest import Console, Shot, sign_in, watch_dialogs

CONTACT = "+447700900123"
OTHER = "+447700900456"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_an_operator_follows_a_message_from_send_to_reply(
    console: Console, page: Page, screenshot: Shot
) -> None:
    dialogs = watch_dialogs(page)
    sign_in(page, console)
    expect(page.locator("[data-live-status]")).to_have_text(re.compile("^Live"))
    page.evaluate("window.stillTheSamePage = true")

    # The customer writes in; then the API answers: both rows appear without a reload.
    asked = console.inbound(CONTACT, "Hi, where is my parcel?")
    sent = console.send(CONTACT, "Your parcel ships today", reply_to=asked)
    assert sent["status"] == "sent", sent
    row = page.locator(f'tr[data-id="{sent["id"]}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("+44********23")
    expect(row.locator(".badge")).to_have_text("sent")
    expect(page.locator("tbody tr")).to_have_count(2)
    assert CONTACT not in page.content()  # masked everywhere

    # Meta reports the delivery: the badge changes, still without a reload.
    console.delivered(sent)
    expect(row.locator(".badge")).to_have_text("delivered")
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "messages")

    # The timeline: queued, accepted by whatsapp_cloud, delivered; times from the first.
    row.get_by_role("link").click()
    page.wait_for_url(f"{console.url}/messages/{sent['id']}")
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(0)).to_contain_text("+0.000s")
    expect(timeline.nth(0)).to_contain_text("Queued for whatsapp via whatsapp_cloud")
    expect(timeline.nth(1)).to_contain_text("Accepted by the provider")
    expect(timeline.nth(1)).to_contain_text(sent["provider_message_id"])
    expect(timeline.nth(2)).to_contain_text("Delivered to the handset")
    expect(timeline.nth(2)).to_contain_text("a provider's status report")
    expect(page.locator("#message-body")).to_have_text("Your parcel ships today")
    expect(page.locator("pre.response")).to_contain_text("messages")  # Meta's answer, redacted
    screenshot(page, "timeline")

    # Its conversation: both directions, the window open; the reply goes out.
    page.get_by_role("link", name="Open the conversation").click()
    expect(page.locator(".bubble.inbound")).to_contain_text("Hi, where is my parcel?")
    expect(page.locator(".bubble.outbound")).to_contain_text("Your parcel ships today")
    expect(page.locator("#window")).to_contain_text("open for 24.0h more")
    page.get_by_label("Reply").fill("It arrives tomorrow before noon.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".bubble.outbound").last).to_contain_text("It arrives tomorrow")
    with console.api() as client:
        listed = client.get("/conversa/messages", params={"to": CONTACT}).json()["data"]
    reply = next(m for m in listed if m.get("body") == "It arrives tomorrow before noon.")
    assert reply["reply_to"] == asked and reply["status"] == "sent", reply
    screenshot(page, "conversation")

    # Reveal the number: shown once, logged with the token's name and never the number.
    page.get_by_role("button", name="Reveal number").click()
    expect(page.locator("#contact-number")).to_have_text(CONTACT)
    output = console.server.output()
    assert f"console number reveal token={console.token_name}" in output
    assert CONTACT not in output and CONTACT[1:] not in output

    # A contact who never wrote: only a template may be sent, and the reply box says so.
    template = httpx.post(
        f"{console.server.base_url}/conversa/messages",
        headers={"Authorization": f"Bearer {console.server.token}"},
        json={"channel": "whatsapp", "to": OTHER, "template": {"name": "order_shipped"}},
    )
    assert template.status_code == 201, template.text
    page.get_by_role("link", name="Conversations", exact=True).click()
    page.get_by_label("Contact number").fill("0044 7700 900 456")
    page.get_by_role("button", name="Filter").click()
    page.locator("tbody a").first.click()
    expect(page.locator("#window")).to_contain_text("only a template")
    page.get_by_label("Reply").fill("Hello?")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("alert")).to_contain_text("customer service window")
    expect(page.get_by_label("Reply")).to_have_value("Hello?")
    screenshot(page, "reply-refused")

    page.get_by_role("link", name="Overview", exact=True).click()
    screenshot(page, "overview")

    # Sign out: the session is over, a page asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator(".notice")).to_have_text("You are signed out.")
    page.goto(console.url + "/messages")
    assert page.url.startswith(console.url + "/sign-in")
    assert dialogs == []
