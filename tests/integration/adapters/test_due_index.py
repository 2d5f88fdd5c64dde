"""The dispatcher's scan for due attempts is served by an index, not a table scan."""

from __future__ import annotations

from typing import Any

from conversa.app.service import ConversaService

DUE = (
    "SELECT id FROM {table} WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= {now} "
    "ORDER BY next_attempt_at LIMIT 100"
)


def test_the_due_scan_uses_its_index(service: ConversaService) -> None:
    datastore: Any = service.view.datastore  # type: ignore[attr-defined]
    if service.backend.kind == "sqlite":
        with datastore.transaction(commit=False) as curs:
            curs.execute(
                "EXPLAIN QUERY PLAN " + DUE.format(table="conversa_messages", now="?"), ("x",)
            )
            plan = " ".join(str(row[-1]) for row in curs.fetchall())
    else:
        table = f'"{datastore.schema}".conversa_messages'
        with datastore.transaction(commit=False) as curs:
            # An empty table makes any plan cheap; forbid the sequential scan to see
            # whether an index can serve the query at all.
            curs.execute("SET LOCAL enable_seqscan = off")
            curs.execute("EXPLAIN " + DUE.format(table=table, now="now()"))
            plan = " ".join(row["QUERY PLAN"] for row in curs.fetchall())
    assert "conversa_messages_due_idx" in plan, plan
