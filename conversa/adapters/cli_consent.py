"""``conversa consent show|opt-out|opt-in|import``: the consent ledger from the shell."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conversa.app.consent import ConsentRequest, ConsentView
from conversa.app.consent_import import ConsentImporter
from conversa.domain.errors import InvalidRequest
from conversa.domain.recipient import OPTED_IN, OPTED_OUT

CHANNELS = ["sms", "whatsapp", "all"]
SCOPES = ["all", "marketing"]
COLUMNS = frozenset({"number", "channel", "scope", "status"})
#: Who the command line records as having made a change.
BY = "cli"


@click.group()
def consent() -> None:
    """The consent ledger: who opted out of what, when, and why."""


def _print(view: ConsentView, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view.as_dict(), indent=2))
        return
    click.echo(view.number)
    for channel, scopes in view.table().items():
        click.echo(f"  {channel:<9} all: {scopes['all']:<10} marketing: {scopes['marketing']}")
    if view.history:
        click.echo("history:")
    for item in view.as_dict()["history"]:
        cause = item.get("keyword") or item.get("code") or item.get("by") or ""
        click.echo(
            f"  {item['occurred_at']}  {item['type']:<9} {item['channel']:<8} "
            f"{item['scope']:<9} {item['source']} {cause}".rstrip()
        )


@consent.command(name="show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as the HTTP API).")
def show_command(number: str, as_json: bool) -> None:
    """A number's consent per channel and its history."""
    from conversa.adapters.cli import fail, load_settings, opened_service

    with opened_service(load_settings()) as service:
        try:
            view = service.consent.show(number)
        except InvalidRequest as error:
            fail(f"{error.field}: {error.message}", 2)
    _print(view, as_json)


def _change(status: str, number: str, channel: str, scope: str, as_json: bool) -> None:
    from conversa.adapters.cli import fail, load_settings, opened_service

    change = ConsentRequest(status, channel, scope)
    with opened_service(load_settings()) as service:
        try:
            view = service.consent.request(number, change, "api", by=BY)
        except InvalidRequest as error:
            fail(f"{error.field}: {error.message}", 2)
    _print(view, as_json)


_channel = click.option("--channel", type=click.Choice(CHANNELS), default="all", show_default=True)
_scope = click.option("--scope", type=click.Choice(SCOPES), default="all", show_default=True)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON (as the HTTP API).")


@consent.command(name="opt-out")
@click.argument("number")
@_channel
@_scope
@_json
def opt_out_command(number: str, channel: str, scope: str, as_json: bool) -> None:
    """Opt NUMBER out (recorded with source api, by "cli")."""
    _change(OPTED_OUT, number, channel, scope, as_json)


@consent.command(name="opt-in")
@click.argument("number")
@_channel
@_scope
@_json
def opt_in_command(number: str, channel: str, scope: str, as_json: bool) -> None:
    """Opt NUMBER in again (recorded with source api, by "cli")."""
    _change(OPTED_IN, number, channel, scope, as_json)


def _rows(handle: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(handle)
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "number" not in header:
        raise click.UsageError("the CSV file needs a header row with a number column")
    unknown = sorted(set(header) - COLUMNS)
    if unknown:
        raise click.UsageError(f"unknown column {unknown[0]} (known: {', '.join(sorted(COLUMNS))})")
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, row


@consent.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Import consent from a CSV file with a header row: number (required), channel (sms,
    whatsapp, all; default all), scope (all, marketing; default all), status (opted_out,
    opted_in; default opted_out). Recorded with source import. Running it again changes
    nothing."""
    from conversa.adapters.cli import _stderr_console, fail, load_settings, opened_service
    from conversa.adapters.csv_send import count_rows

    total = count_rows(path)
    began = time.perf_counter()
    with (
        opened_service(load_settings()) as service,
        path.open(newline="", encoding="utf-8-sig") as handle,
        Progress(
            TextColumn(f"importing {path.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr_console(),
        ) as progress,
    ):
        task = progress.add_task("rows", total=total)
        importer = ConsentImporter(service.app, service.writer, service.consent)
        try:
            result = importer.run(_rows(handle), lambda n: progress.update(task, advance=n))
        except (csv.Error, UnicodeDecodeError) as error:
            fail(f"{path.name}: {error}", 2)
    for line, field, message in result.refused:
        click.echo(f"line {line}: {field}: {message}", err=True)
    seconds = time.perf_counter() - began
    click.echo(
        f"{result.rows + len(result.refused)} rows in {seconds:.1f} s: {result.changed} changed, "
        f"{result.unchanged} already so, {len(result.refused)} refused"
    )
    if result.refused:
        raise SystemExit(1)
