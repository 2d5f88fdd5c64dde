"""The console's defences, over HTTP and in the browser: security headers on every
response, cookies, non-console tokens refused, revocation ending sessions, CSRF and
cross-site posts refused, no framing, no script injection, and keyboard-only use."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.console.conftest import Console, Shot, sign_in, watch_dialogs

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


@contextmanager
def signed_in_client(console: Console, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        csrf = csrf_of(client.get("/sign-in").text)
        answer = client.post("/sign-in", data={"csrf_token": csrf, "token": token})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def assert_secure_headers(response: httpx.Response) -> None:
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy, (response.url, policy)
    assert "frame-ancestors 'none'" in policy, (response.url, policy)
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, policy
    assert headers.get("x-frame-options") == "DENY", (response.url, headers)
    assert headers.get("cache-control") == "no-store", (response.url, headers)


def test_every_console_response_carries_the_security_headers(console: Console) -> None:
    with httpx.Client(base_url=console.server.base_url, timeout=10) as anonymous:
        answers = [
            anonymous.get("/conversa/console"),
            anonymous.get("/conversa/console/sign-in"),
            anonymous.get("/conversa/console/messages"),  # to the sign-in page
            anonymous.get("/conversa/console/static/console.css"),
            anonymous.get("/conversa/console/static/live.js"),
            anonymous.get("/conversa/console/no-such-page"),
            anonymous.put("/conversa/console/messages"),
            anonymous.post("/conversa/console/sign-out", data={"csrf_token": "x"}),
        ]
    assert [a.status_code for a in answers] == [303, 200, 303, 200, 200, 404, 405, 403]
    with signed_in_client(console, console.token) as client:
        answers += [client.get("/messages"), client.get("/conversations"), client.get("/overview")]
        assert [a.status_code for a in answers[-3:]] == [200, 200, 200]
    for answer in answers:
        assert_secure_headers(answer)
    # The session cookie: signed, HttpOnly, SameSite=Strict, the console's path only, an
    # hour long (CONVERSA_CONSOLE_SESSION_MINUTES' default); not Secure over plain http.
    cookie = answers[1].headers["set-cookie"]
    assert cookie.startswith("conversa_console=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/conversa/console", "Max-Age=3600"):
        assert attribute in cookie, cookie
    assert "Secure" not in cookie
    # No inline script or style anywhere: only files from /conversa/console/static.
    for answer in answers:
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert "<style" not in answer.text and " style=" not in answer.text
            for script in re.findall(r"<script[^>]*>", answer.text):
                assert 'src="/conversa/console/static/' in script, script


def test_a_token_without_the_console_permission_cannot_sign_in(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        csrf = csrf_of(client.get("/sign-in").text)
        answer = client.post("/sign-in", data={"csrf_token": csrf, "token": console.server.token})
        assert answer.status_code == 403
        assert "created with `conversa token create NAME --console`" in answer.text
        assert client.get("/messages").status_code == 303  # not signed in
        wrong = client.post("/sign-in", data={"csrf_token": csrf, "token": "cnv_" + "x" * 43})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text


def test_revoking_the_token_ends_its_sessions_within_five_seconds(console: Console) -> None:
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    with signed_in_client(console, console.create_token(name, console=True)) as client:
        assert client.get("/messages").status_code == 200
        stream_ended = threading.Event()
        frames: list[str] = []

        def follow_live_stream() -> None:
            with client.stream("GET", "/live", timeout=30) as live:
                assert live.status_code == 200
                frames.extend(live.iter_lines())
            stream_ended.set()

        follower = threading.Thread(target=follow_live_stream)
        follower.start()
        time.sleep(0.5)
        console.revoke(name)
        revoked_at = time.monotonic()
        while (answer := client.get("/messages")).status_code == 200:
            assert time.monotonic() - revoked_at < 6.5, "the session outlived its token"
            time.sleep(0.1)
        assert answer.status_code == 303
        assert "/conversa/console/sign-in" in answer.headers["location"]
        assert "reason=revoked" in answer.headers["location"]
        # The open live stream ends too.
        assert stream_ended.wait(7.5 - (time.monotonic() - revoked_at)), frames
        follower.join()
        assert ": the token was revoked" in frames


def test_a_post_without_the_sessions_csrf_token_is_refused(console: Console) -> None:
    with signed_in_client(console, console.token) as client:
        csrf = csrf_of(client.get("/messages").text)
        assert client.post("/sign-out", data={}).status_code == 403
        assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 403
        cross = client.post(
            "/sign-out", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert client.get("/messages").status_code == 200  # still signed in
        assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303


def test_a_hostile_body_shows_as_text_and_runs_nothing(
    console: Console, page: Page, screenshot: Shot
) -> None:
    dialogs = watch_dialogs(page)
    sent = console.send("+447700900777", XSS, channel="sms")
    sign_in(page, console)
    row = page.locator(f'tr[data-id="{sent["id"]}"]')
    expect(row).to_contain_text(XSS)
    row.get_by_role("link").click()
    expect(page.locator("#message-body")).to_have_text(XSS)
    page.get_by_role("link", name="Open the conversation").click()
    expect(page.locator(".bubble.outbound")).to_contain_text(XSS)
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("main script").count() == 0
    screenshot(page, "xss-as-text")
    page.wait_for_timeout(300)
    assert dialogs == []


def test_a_cross_site_form_post_is_refused_and_the_console_cannot_be_framed(
    console: Console, page: Page, screenshot: Shot
) -> None:
    sign_in(page, console)
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert csrf
    # Another site's page posts a form to the console, even with the right token.
    attacker = (
        f'<form method="post" action="{console.url}/sign-out">'
        f'<input type="hidden" name="csrf_token" value="{csrf}">'
        '<button id="go">win a prize</button></form>'
        f'<iframe id="frame" src="{console.url}/messages" width="600" height="300"></iframe>'
    )
    page.route(
        "http://evil.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attacker),
    )
    page.goto("http://evil.test/")
    page.wait_for_timeout(500)
    # The frame holds no console page.
    framed = [f for f in page.frames if f != page.main_frame]
    assert framed
    for frame in framed:
        assert frame.locator(".brand").count() == 0
    with page.expect_response(f"{console.url}/sign-out") as posted:
        page.locator("#go").click()
    assert posted.value.status == 403
    screenshot(page, "cross-site-refused")
    page.goto(console.url + "/messages")
    assert page.url == console.url + "/messages"  # still signed in: nothing was done


UNLABELLED = """() => Array.from(
  document.querySelectorAll('input:not([type=hidden]), select, textarea')
).filter(e => e.labels.length === 0).map(e => e.outerHTML)"""


def focused(page: Page) -> str:
    described: str = page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName + ':' + (e.id || e.getAttribute('name') || e.textContent.trim()); }"
    )
    return described


def tab_to(page: Page, target: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page) == target:
            return
    raise AssertionError(f"{target} is not reachable with Tab")


def test_everything_works_from_the_keyboard_and_every_input_has_a_label(
    console: Console, page: Page, screenshot: Shot
) -> None:
    asked = console.inbound("+447700900888", "Keyboard user here")
    page.goto(console.url + "/sign-in")
    assert page.evaluate(UNLABELLED) == []
    assert focused(page) == "INPUT:token"  # autofocus
    page.keyboard.type(console.token)
    page.keyboard.press("Enter")
    page.wait_for_url(console.url + "/messages")
    assert page.evaluate(UNLABELLED) == []
    # The filters, then the navigation.
    tab_to(page, "SELECT:f-status")
    page.keyboard.press("ArrowDown")  # "queued"... any status: the form still submits
    tab_to(page, "INPUT:f-number")
    page.keyboard.type("+44 7700 900888")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*number=%2B44\+7700\+900888.*"))
    expect(page.get_by_label("Number")).to_have_value("+447700900888")  # as E.164
    tab_to(page, "A:Conversations")
    page.keyboard.press("Enter")
    page.wait_for_url(console.url + "/conversations")
    assert page.evaluate(UNLABELLED) == []
    tab_to(page, "A:+44********88")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/conversations/[0-9a-f-]+$"))
    assert page.evaluate(UNLABELLED) == []
    tab_to(page, "BUTTON:Reveal number")
    page.keyboard.press("Enter")
    expect(page.locator("#contact-number")).to_have_text("+447700900888")
    tab_to(page, "TEXTAREA:reply-body")
    page.keyboard.type("Typed without a mouse")
    tab_to(page, "BUTTON:Send reply")
    page.keyboard.press("Enter")
    expect(page.locator(".bubble.outbound").last).to_contain_text("Typed without a mouse")
    tab_to(page, "A:timeline")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.url}/messages/{asked}")
    screenshot(page, "keyboard")
    tab_to(page, "BUTTON:Sign out")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/sign-in\?reason=signed-out$"))
