"""``conversa diagnose``: what needs action, for people and for scripts, without secrets."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.domain.status import Status
from tests.support import conversa, make_settings


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


def test_diagnose_counts_parked_and_expired_reports(backend_url: str, tmp_path: Path) -> None:
    settings = make_settings(backend_url, parked_report_hours="1")
    migrate(settings)
    later = datetime.now(UTC) + timedelta(hours=2)
    with bootstrap(settings, clock=lambda: later) as service:
        for sid in ("SM-of-another-tool", "SM-also-theirs"):
            report = StatusReport("twilio", sid, None, Status.DELIVERED, "delivered")
            assert service.record_report(report) is ReportOutcome.PARKED
        assert service.expire_parked_reports() == 2  # two hours on, past the hour
        report = StatusReport("twilio", "SM-just-now", None, Status.DELIVERED, "delivered")
        assert service.record_report(report) is ReportOutcome.PARKED

    within = diagnose(backend_url, tmp_path, "--json", parked_report_hours="1")
    found = checks(within)
    assert within.returncode == 0, within.stdout
    detail = str(found["status reports"]["detail"])
    assert "1 parked" in detail and "2 expired" in detail

    # A parked report older than the window is one no worker expired: is one running?
    time.sleep(1.5)
    overdue = diagnose(backend_url, tmp_path, "--json", parked_report_hours="0.0003")
    found = checks(overdue)
    assert overdue.returncode == 1
    assert not found["status reports"]["ok"]
    assert "worker" in str(found["status reports"]["detail"])


def test_diagnose_names_a_setting_bootstrap_refuses(backend_url: str, tmp_path: Path) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    result = diagnose(backend_url, tmp_path, "--json", attempt_lease_seconds="5")
    assert result.returncode == 1
    found = checks(result)
    assert not found["configuration"]["ok"]
    assert "CONVERSA_ATTEMPT_LEASE_SECONDS" in str(found["configuration"]["detail"])
