"""``conversa diagnose``: what needs action, for people and for scripts, without secrets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg import sql

from conversa.app.bootstrap import bootstrap
from conversa.app.projection import ProjectionOutOfSequence
from conversa.app.reports import StatusReport
from conversa.app.service import ConversaService
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


def corrupt_row(service: ConversaService, message_id: UUID) -> None:
    """Make the message's row claim a version its events never reached, as a hand edit or
    a bug would: the projection cannot apply the message's next event after it."""
    view: Any = service.view
    with view.datastore.transaction(commit=True) as cursor:
        if service.backend.kind == "postgresql":
            cursor.execute(
                sql.SQL("UPDATE {} SET version = version + 3 WHERE id = %s").format(view.table),
                (message_id,),
            )
        else:
            cursor.execute(
                "UPDATE conversa_messages SET version = version + 3 WHERE id = ?",
                (str(message_id),),
            )


def test_diagnose_says_when_the_projection_is_stalled_why_and_what_to_do(
    backend_url: str, tmp_path: Path
) -> None:
    assert conversa("migrate", url=backend_url, cwd=tmp_path).returncode == 0
    with bootstrap(make_settings(backend_url)) as service:
        sent = [service.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(3)]
        service.projector().catch_up()
        corrupt_row(service, sent[1].message_id)
        service.record_report(
            StatusReport("twilio", None, sent[1].message_id, Status.DELIVERED, "delivered")
        )
        with pytest.raises(ProjectionOutOfSequence):
            service.projector().catch_up()  # what the worker runs into, again and again
        assert service.projector().status().lag == 1

    stalled = diagnose(backend_url, tmp_path, "--json")
    assert stalled.returncode == 1, stalled.stdout
    projection = checks(stalled)["projection"]
    assert not projection["ok"]
    detail = str(projection["detail"])
    assert "lag 1" in detail and "stalled" in detail
    assert "ProjectionOutOfSequence" in detail and str(sent[1].message_id) in detail
    assert "conversa projection rebuild" in detail

    rebuilt = conversa("projection", "rebuild", url=backend_url, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    healthy = diagnose(backend_url, tmp_path, "--json")
    assert healthy.returncode == 0, healthy.stdout
    assert str(checks(healthy)["projection"]["detail"]).endswith("lag 0")
