"""``conversa diagnose`` on status reports nobody claimed, and on settings that only the
composition root can judge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.domain.status import Status
from tests.integration.adapters.test_cli_diagnose import checks, diagnose
from tests.support import conversa, make_settings


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
