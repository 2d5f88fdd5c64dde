"""Helpers shared by the test suites."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from conversa.app.settings import Settings
from conversa.domain.content import Body, Content
from conversa.domain.message import (
    ATTEMPT_BY_DISPATCHER,
    ATTEMPT_BY_REQUEST,
    Message,
    message_id_for,
)
from conversa.domain.phone import PhoneNumber


def make_settings(url: str, **overrides: str) -> Settings:
    """Settings for ``url``, with ``name=value`` overrides for ``CONVERSA_NAME``."""
    environ = {
        "CONVERSA_DATABASE_URL": url,
        **{f"CONVERSA_{k.upper()}": v for k, v in overrides.items()},
    }
    return Settings.from_environ(environ)


def conversa(
    *args: str, url: str, cwd: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m conversa ARGS`` as a real process, with none of this process's
    ``CONVERSA_*`` variables: only the database ``url`` and the ``extra`` environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATABASE_URL": url, **(extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "conversa", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def queued_message(
    *,
    key: str | None = None,
    channel: str = "sms",
    to: str = "+15551234567",
    sender: str | None = None,
    content: Content | None = None,
    meta: dict[str, object] | None = None,
) -> Message:
    """A new Message (only its Queued event), built in memory as ``send()`` would."""
    return Message(
        id=message_id_for("scope", key),
        channel=channel,
        to=PhoneNumber.parse(to),
        sender=sender,
        content=Body("hi") if content is None else content,
        driver="log",
        meta=meta or {},
        idempotency_key=key,
        fingerprint="f",
        next_attempt_at=None,
        nonce=None,
        attempt_by=ATTEMPT_BY_REQUEST,
        reply_to=None,
        quote=None,
        category="transactional",
        consent_override=False,
        scheduled_at=None,
    )


def scheduled_message(
    at: datetime,
    *,
    to: str = "+4915112345678",
    category: str = "marketing",
    attempt_by: str = ATTEMPT_BY_DISPATCHER,
) -> Message:
    """A new Message scheduled for ``at`` (only its Queued event), as a send with
    ``send_at`` (or one deferred by quiet hours) records it."""
    return Message(
        id=message_id_for("scope", f"scheduled {at.isoformat()} {to}"),
        channel="sms",
        to=PhoneNumber.parse(to),
        sender=None,
        content=Body("Winter sale: 20% off"),
        driver="log",
        meta={},
        idempotency_key=None,
        fingerprint="f",
        next_attempt_at=at,
        nonce=None,
        attempt_by=attempt_by,
        reply_to=None,
        quote=None,
        category=category,
        consent_override=False,
        scheduled_at=at,
    )
