"""bench/statements.py counts what a send costs on a private cluster: a single send is two
event-store transactions of six statements each, and a CRUD send two statements; with many
senders the group commit shares transactions."""

from __future__ import annotations

import pytest

from bench import statements
from tests.pgcluster import cluster_or_skip

pytestmark = pytest.mark.postgres


def test_statements_commits_and_fsyncs_per_send() -> None:
    cluster_or_skip()
    lines: list[str] = []
    rows = {row.key: row for row in statements.measure([1, 16], 40, lines.append)}
    one = rows["statements.statements.1"]
    assert one.conversa is not None and one.baseline is not None
    # BEGIN, SET LOCAL lock_timeout, LOCK TABLE, NOTIFY, INSERT, COMMIT, twice; the start
    # and close of one service spread over the sends add a little.
    assert 12 <= one.conversa.value < 13
    assert one.baseline.value == 2
    fsyncs = rows["statements.fsyncs.1"]
    assert fsyncs.baseline is not None and fsyncs.baseline.value >= 1.9
    shared = rows["statements.commits.16"]
    assert shared.conversa is not None and shared.conversa.value < 1.5
    assert len(lines) == 2
