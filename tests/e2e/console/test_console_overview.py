"""The Overview page in a real browser: after sends from the API, a delivery report and a
refusal by Meta, it shows the day's figures, the chart, the driver's delivery rate, the
failure reason and the diagnosis; its figures table opens from the keyboard."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.console.conftest import Console, Shot, sign_in, watch_dialogs
from tests.fakes.providers import meta_error

CONTACT = "+447700900777"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_the_overview_shows_the_day(console: Console, page: Page, screenshot: Shot) -> None:
    dialogs = watch_dialogs(page)
    console.inbound(CONTACT, "Hello, my code please")  # opens WhatsApp's window
    sent = [console.send(CONTACT, f"Your code is 40{n}") for n in range(3)]
    sms = console.send("+15551230123", "An SMS on the log driver", channel="sms")
    assert sms["status"] == "sent" and all(m["status"] == "sent" for m in sent)
    console.meta.answer(meta_error(131026))
    refused = console.send(CONTACT, "Undeliverable")
    assert refused["status"] == "failed", refused
    for message in sent[:2]:
        console.delivered(message)

    sign_in(page, console)
    page.get_by_role("link", name="Overview", exact=True).click()
    # The worker projects the events within moments: reload until they show.
    deadline = time.monotonic() + 15
    while page.locator("#total-delivered").inner_text() != "2":
        assert time.monotonic() < deadline, page.locator(".figures").inner_text()
        time.sleep(0.2)
        page.reload()
    expect(page.locator("#total-queued")).to_have_text("5")
    expect(page.locator("#total-sent")).to_have_text("4")
    expect(page.locator("#total-failed")).to_have_text("1")

    chart = page.get_by_role("img", name="Messages sent, delivered and failed per hour")
    expect(chart).to_be_visible()
    expect(chart.locator("desc")).to_contain_text("4 sent, 2 delivered, 1 failed")

    drivers = page.locator("section[aria-labelledby=drivers-heading] tbody tr")
    whatsapp = drivers.filter(has_text="whatsapp_cloud")
    # Delivered 2 of the 3 outcomes known (2 delivered, 1 failed).
    expect(whatsapp).to_contain_text("66.7%")
    expect(drivers.filter(has_text="log")).to_contain_text("no outcomes")
    reasons = page.locator("section[aria-labelledby=reasons-heading] tbody tr")
    expect(reasons).to_have_count(1)
    expect(reasons.first).to_contain_text("131026")
    expect(page.locator(".findings li").first).to_contain_text("database")
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    assert CONTACT not in page.content()

    # The chart's figures as a table, from the keyboard.
    page.locator("details summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("details table")).to_be_visible()
    page.locator("details summary").focus()
    page.keyboard.press("Enter")  # closed again: the screenshot shows the chart
    screenshot(page, "overview")
    assert dialogs == []
