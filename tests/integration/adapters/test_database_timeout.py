"""CONVERSA_DB_TIMEOUT_SECONDS bounds how long an operation waits for an unreachable
PostgreSQL, and the same service works again once it is back, without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.outage import DatabaseUnavailable
from tests.pgcluster import throwaway_cluster
from tests.support import conversa, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TIMEOUT = 2.0
MARGIN = 1.5  # a shared, noisy machine


def test_operations_give_up_after_the_timeout_and_resume_after_the_outage(
    tmp_path: Path,
) -> None:
    with throwaway_cluster() as cluster:
        settings = make_settings(cluster.url(), db_timeout_seconds=str(TIMEOUT))
        migrate(settings)
        with bootstrap(settings) as service:
            sent = service.send("sms", "+15551234567", {"body": "before"})
            cluster.stop()

            for operation in (
                lambda: service.send("sms", "+15551234567", {"body": "during"}),
                lambda: service.get_message(sent.message_id),
                lambda: service.tokens.authenticate("cnv_" + "x" * 43),
            ):
                began = time.monotonic()
                with pytest.raises(DatabaseUnavailable):
                    operation()
                assert time.monotonic() - began <= TIMEOUT + MARGIN

            done = conversa(
                "send",
                "--channel",
                "sms",
                "--to",
                "+15551234567",
                "--body",
                "x",
                url=cluster.url(),
                cwd=tmp_path,
            )
            assert done.returncode == 1
            assert done.stderr.startswith("conversa: database unavailable: ")
            assert "Traceback" not in done.stderr

            cluster.start()
            began = time.monotonic()
            while True:
                try:
                    after = service.send("sms", "+15551234567", {"body": "after"})
                    break
                except DatabaseUnavailable:
                    assert time.monotonic() - began < 5.0
            assert after.status == "sent"
            assert service.get_message(sent.message_id).status == "sent"
