"""``conversa diagnose``: what needs action, for people and for scripts, without secrets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import conversa


def diagnose(url: str, cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    extra = {f"CONVERSA_{k.upper()}": v for k, v in settings.items()}
    return conversa("diagnose", *args, url=url, cwd=cwd, extra=extra)


def checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    report = json.loads(result.stdout)
    assert report["ok"] is (result.returncode == 0)
    return {check["name"]: check for check in report["checks"]}


def test_diagnose_tells_what_needs_action(backend_url: str, tmp_path: Path) -> None:
    unmigrated = diagnose(backend_url, tmp_path, "--json")
    assert unmigrated.returncode == 1
    assert "conversa migrate" in str(checks(unmigrated)["database"]["detail"])

    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    healthy = diagnose(backend_url, tmp_path, "--json")
    assert healthy.returncode == 0, healthy.stdout
    found = checks(healthy)
    assert {"database", "projection", "subscribers", "sms driver", "whatsapp driver"} <= set(found)
    assert all(check["ok"] for check in found.values())

    secret = "twilio-secret-token-do-not-print"
    meta_secret = "meta-app-secret-do-not-print"
    misconfigured = diagnose(
        backend_url,
        tmp_path,
        "--json",
        sms_driver="twilio",
        whatsapp_driver="whatsapp_cloud",
        twilio_token=secret,
        whatsapp_app_secret=meta_secret,
    )
    assert misconfigured.returncode == 1
    found = checks(misconfigured)
    assert not found["sms driver"]["ok"]
    assert "CONVERSA_TWILIO_SID" in str(found["sms driver"]["detail"])
    assert "CONVERSA_WHATSAPP_PHONE_ID" in str(found["whatsapp driver"]["detail"])
    assert not found["webhook base URL"]["ok"]
    assert found["twilio webhook secret"]["ok"]
    assert found["whatsapp_cloud webhook secret"]["ok"]
    assert not found["whatsapp_cloud verify token"]["ok"]

    table = diagnose(
        backend_url,
        tmp_path,
        sms_driver="twilio",
        twilio_token=secret,
        whatsapp_app_secret=meta_secret,
    )
    assert table.returncode == 1 and "ACTION" in table.stdout
    for output in (misconfigured.stdout + misconfigured.stderr, table.stdout + table.stderr):
        assert secret not in output and meta_secret not in output
