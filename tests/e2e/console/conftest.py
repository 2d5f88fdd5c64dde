"""The console end to end: ``conversa serve`` on PostgreSQL with the WhatsApp Cloud API
faked on loopback (SMS on the log driver), a console token, and headless Chromium (Debian's
``chromium`` package, see scripts/ensure-chromium) driven by Playwright."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

from conversa.app.bootstrap import bootstrap
from tests.e2e.conftest import Server, running_server
from tests.fakes.providers import WHATSAPP_PHONE_ID, WHATSAPP_TOKEN, FakeWhatsAppCloud
from tests.support import make_settings

CHROMIUM = os.environ.get("CONVERSA_TEST_CHROMIUM", "/usr/bin/chromium")
#: Also copy the screenshots here when set (the README's pictures).
SCREENSHOTS = os.environ.get("CONVERSA_TEST_SCREENSHOTS")
APP_SECRET = "meta-app-secret-for-console-tests"
BUSINESS = "+15550783881"


@dataclass
class Console:
    server: Server
    token: str  # a console token
    token_name: str
    meta: FakeWhatsAppCloud

    @property
    def url(self) -> str:
        return self.server.base_url + "/conversa/console"

    def api(self) -> httpx.Client:
        return self.server.client()

    def send(self, to: str, body: str, channel: str = "whatsapp", **more: Any) -> dict[str, Any]:
        with self.api() as client:
            response = client.post(
                "/conversa/messages", json={"channel": channel, "to": to, "body": body, **more}
            )
        assert response.status_code == 201, response.text
        message: dict[str, Any] = response.json()
        return message

    def meta_webhook(self, value: dict[str, Any]) -> None:
        """Post a WhatsApp Cloud webhook, signed with the app secret as Meta signs it."""
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": BUSINESS[1:],
                "phone_number_id": WHATSAPP_PHONE_ID,
            },
            **value,
        }
        document = {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
            ],
        }
        raw = json.dumps(document).encode()
        digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        response = httpx.post(
            f"{self.server.base_url}/conversa/webhooks/whatsapp_cloud",
            content=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
        )
        assert response.status_code == 200, response.text

    def delivered(self, message: dict[str, Any]) -> None:
        self.meta_webhook(
            {
                "statuses": [
                    {
                        "id": message["provider_message_id"],
                        "status": "delivered",
                        "timestamp": str(int(time.time())),
                        "recipient_id": message["to"][1:],
                    }
                ]
            }
        )

    def inbound(self, sender: str, text: str) -> str:
        """The contact writes in; the inbound message's id, once it is in the log."""
        wamid = f"wamid.{uuid.uuid4().hex}"
        self.meta_webhook(
            {
                "contacts": [{"profile": {"name": "Ada"}, "wa_id": sender[1:]}],
                "messages": [
                    {
                        "from": sender[1:],
                        "id": wamid,
                        "timestamp": str(int(time.time())),
                        "type": "text",
                        "text": {"body": text},
                    }
                ],
            }
        )
        with self.api() as client:
            deadline = time.monotonic() + 10
            while True:
                listed = client.get("/conversa/messages", params={"direction": "inbound"})
                for message in listed.json()["data"]:
                    if message.get("body") == text:
                        return str(message["id"])
                assert time.monotonic() < deadline, listed.text
                time.sleep(0.05)

    def create_token(self, name: str, *, console: bool) -> str:
        with bootstrap(make_settings(self.server.database_url)) as service:
            _info, secret = service.tokens.create(name, console=console)
        return secret

    def revoke(self, name: str) -> None:
        with bootstrap(make_settings(self.server.database_url)) as service:
            service.tokens.revoke(name)


@pytest.fixture(scope="module")
def console(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    url = f"{postgres_database}?schema=console_{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("console")
    templates = workdir / "templates.toml"
    templates.write_text(
        '[order_shipped]\nwhatsapp_cloud = { name = "order_shipped", language = "en_US" }\n'
    )
    with (
        FakeWhatsAppCloud() as meta,
        running_server(
            url,
            workdir,
            templates_file=str(templates),
            whatsapp_window_check="true",
            whatsapp_driver="whatsapp_cloud",
            whatsapp_phone_id=WHATSAPP_PHONE_ID,
            whatsapp_token=WHATSAPP_TOKEN,
            whatsapp_api_base=meta.url,
            whatsapp_app_secret=APP_SECRET,
            rate_limit="100000/minute",
        ) as server,
    ):
        running = Console(server, "", f"operator-{uuid.uuid4().hex[:6]}", meta)
        running.token = running.create_token(running.token_name, console=True)
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


Shot = Callable[[Page, str], Path]


@pytest.fixture
def screenshot(tmp_path: Path) -> Shot:
    """Save a full-page screenshot under the test's output directory (and, with
    CONVERSA_TEST_SCREENSHOTS set, a copy there)."""

    def take(page: Page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SCREENSHOTS) / path.name)
        return path

    return take


def sign_in(page: Page, console: Console, token: str | None = None) -> None:
    page.goto(console.url + "/sign-in")
    page.get_by_label("Console token").fill(token or console.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.url + "/messages")


def watch_dialogs(page: Page) -> list[str]:
    """Every dialog (alert, confirm, prompt) the page opens, dismissed: its message."""
    opened: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return opened
