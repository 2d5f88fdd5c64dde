"""The ``conversa`` command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conversa._version import installed_version
from conversa.adapters import logs
from conversa.adapters.cli_conversations import conversations
from conversa.adapters.csv_send import CsvProblem, Row, count_rows, read_rows
from conversa.app.accept import MAX_BATCH
from conversa.app.bootstrap import SchemaMissing, bootstrap, migrate
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.provider_calls import SHUTDOWN_GRACE_SECONDS
from conversa.app.service import ConversaService
from conversa.app.settings import Settings, SettingsError
from conversa.app.tokens import TokenInfo, TokenNotFound
from conversa.app.worker import Worker
from conversa.domain.errors import ConversaError, InvalidRequest


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"conversa: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        settings = Settings.from_environ()
    except SettingsError as error:
        fail(f"configuration error: {error}", 2)
    logs.configure(settings.log_level, settings.log_format)
    return settings


@contextmanager
def opened_service(settings: Settings) -> Iterator[ConversaService]:
    try:
        service = bootstrap(settings)
    except SchemaMissing as error:
        fail(str(error))
    except SettingsError as error:
        fail(f"configuration error: {error}", 2)
    with service:
        yield service


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so that loops end at a safe point."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        logging.getLogger("conversa").info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # Looked up only when asked: reading the installed metadata takes a while.
    if value and not ctx.resilient_parsing:
        click.echo(f"conversa {installed_version()}")
        ctx.exit()


class _Commands(click.Group):
    """Every command: a database that cannot be reached is said in one line, not a
    traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DATABASE_OUTAGE as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
            fail(f"database unavailable{': ' + detail if detail else ''}")


@click.group(cls=_Commands)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the installed version and exit.",
)
def main() -> None:
    """Conversa: SMS and WhatsApp delivery with an exact record of every message."""


@main.command(name="migrate")
def migrate_command() -> None:
    """Create or upgrade every table (safe to run again)."""
    settings = load_settings()
    migration = migrate(settings)
    if migration.created:
        count = len(migration.created)
        tables = ", ".join(migration.created)
        click.echo(f"created {count} table{'s' if count > 1 else ''}: {tables}")
    else:
        click.echo("all tables were already present: nothing to create")


@main.command()
@click.option("--channel", type=click.Choice(["sms", "whatsapp"]))
@click.option("--to", "to", help="Recipient, E.164 (+15551234567).")
@click.option("--body", help="Free text.")
@click.option("--template", help="Template name (see CONVERSA_TEMPLATES_FILE).")
@click.option("--var", "variables", multiple=True, help="Template variable; repeat in order.")
@click.option("--idempotency-key", help="Repeat-safe key: the same key sends once.")
@click.option("--from", "sender", help="Sender, when the driver lets you choose.")
@click.option("--meta", help="JSON object stored with the message.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send every row of this CSV file instead (see above).",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH),
    help="With --csv: rows recorded per transaction.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="With --csv: also send them from this process, and return once all are sent.",
)
def send(
    channel: str | None,
    to: str | None,
    body: str | None,
    template: str | None,
    variables: tuple[str, ...],
    idempotency_key: str | None,
    sender: str | None,
    meta: str | None,
    csv_file: Path | None,
    batch_size: int,
    wait: bool,
) -> None:
    """Send one message and print it as JSON; or, with --csv FILE, queue every row of a
    CSV file for the dispatcher, in batches, with a progress bar and a summary.

    \b
    The CSV file has a header row naming its columns: channel, to, and body or
    template (with variables, a JSON array such as ["Ada","42"]); optionally
    idempotency_key, from, and meta (a JSON object).

    \b
    Running the same file again records nothing twice, so an interrupted run is
    resumed by running it again. A row without an idempotency_key gets a key derived
    from its content (and from how many identical rows come before it): the same row
    is the same message; an edited row is a new one.

    \b
    The messages are sent by a worker (conversa worker, or conversa serve), or by this
    process with --wait. Exit status 1 when any row was refused (each is named by its
    line), 0 otherwise.
    """
    settings = load_settings()
    if csv_file is not None:
        if channel or to or body or template or variables or idempotency_key or sender or meta:
            fail("--csv takes the messages from the file: give no other message option", 2)
        send_csv(settings, csv_file, batch_size=batch_size, wait=wait)
        return
    if channel is None or to is None:
        fail("give --channel and --to (or --csv FILE)", 2)
    payload: dict[str, Any] = {"body": body}
    if template is not None:
        payload = {"body": body, "template": {"name": template, "variables": list(variables)}}
    opts: dict[str, Any] = {"idempotency_key": idempotency_key, "from": sender}
    if meta is not None:
        try:
            opts["meta"] = json.loads(meta)
        except RecursionError:
            fail("--meta must be a JSON object: it is nested too deeply", 2)
        except json.JSONDecodeError as error:
            fail(f"--meta must be a JSON object: {error}", 2)
        except ValueError:  # an integer past Python's int-string limit
            fail("--meta must be a JSON object: a number in it is too long", 2)
    with opened_service(settings) as service:
        try:
            result = service.send(channel, to, payload, opts)
        except InvalidRequest as error:
            fail(f"{error.field}: {error.message}", 2)
        except ConversaError as error:
            fail(f"{error.code}: {error.message}", 2)
    click.echo(json.dumps(result.message.as_dict(), indent=2))
    if not result.ok:
        sys.exit(1)


def send_csv(settings: Settings, path: Path, *, batch_size: int, wait: bool) -> None:
    """Queue the rows of ``path`` in batches; summary on standard output, the refused rows
    on standard error."""
    try:
        total = count_rows(path)
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {path}: {error}", 2)
    counts = {"queued": 0, "already recorded": 0, "refused": 0}
    derived = 0
    refusals: list[str] = []

    def refuse(row: Row, field: str, message: str) -> None:
        counts["refused"] += 1
        refusals.append(f"line {row.line}: {field}: {message}")

    with (
        opened_service(settings) as service,
        path.open(newline="", encoding="utf-8-sig") as handle,
        service.running() if wait else _nothing(),
        Progress(
            TextColumn("sending {task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[summary]}"),
            TimeElapsedColumn(),
            console=_stderr_console(),
        ) as progress,
    ):
        task = progress.add_task("rows", total=total, name=path.name, summary="")
        batch: list[Row] = []

        def flush() -> None:
            results = service.send_batch([row.item for row in batch if row.item is not None])
            for row, outcome in zip(batch, results, strict=True):
                if outcome.error is not None:
                    field = getattr(outcome.error, "field", outcome.error.code)
                    refuse(row, field, outcome.error.message)
                elif outcome.result is not None and outcome.result.replayed:
                    counts["already recorded"] += 1
                else:
                    counts["queued"] += 1
            progress.update(
                task,
                advance=len(batch),
                summary=", ".join(f"{n} {what}" for what, n in counts.items() if n),
            )
            batch.clear()

        try:
            for row in read_rows(handle):
                if row.item is None:
                    assert row.problem is not None
                    refuse(row, *row.problem)
                    progress.update(task, advance=1)
                    continue
                derived += row.derived_key
                batch.append(row)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
        except CsvProblem as error:
            if batch:
                flush()
            fail(f"{path.name}: {error}", 2)
        except KeyboardInterrupt:
            progress.stop()
            fail(
                f"interrupted after {sum(counts.values())} rows; run the same command again "
                "to resume (what was recorded is recognised by its key)",
                130,
            )
    for line in refusals:
        click.echo(line, err=True)
    rows = sum(counts.values())
    click.echo(
        f"{rows} rows: {counts['queued']} queued, {counts['already recorded']} already "
        f"recorded (by an earlier run), {counts['refused']} refused"
        + (f"; {derived} keys derived from row content" if derived else "")
    )
    if not wait and counts["queued"]:
        click.echo("a worker (conversa worker, or conversa serve) sends them")
    if counts["refused"]:
        sys.exit(1)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@main.command()
def worker() -> None:
    """Run the background work until stopped (SIGINT or SIGTERM):

    \b
    - the projection that keeps the message log (conversa_messages) up to date;
    - the dispatcher: retries after transient provider errors, recovery of sends a crash
      left unfinished, and clean-ups (the payloads kept for retries when
      CONVERSA_STORE_BODY=false, parked status reports older than
      CONVERSA_PARKED_REPORT_HOURS);
    - each lifecycle subscriber: those of CONVERSA_SUBSCRIBERS, of the conversa.subscribers
      entry points, and the HTTP subscriber of CONVERSA_EVENTS_URL.

    Every worker dispatches (each attempt is claimed first); the projection and each
    subscriber run in one process at a time, the others stand by.
    """
    settings = load_settings()
    with opened_service(settings) as service, stop_on_signals() as stop:
        Worker(service).run(stop)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-worker", is_flag=True, help="Do not run the worker loop in this server.")
def serve(host: str, port: int, workers: int, no_worker: bool) -> None:
    """Serve the HTTP API (and, unless --no-worker, the worker loop)."""
    import uvicorn

    from conversa.adapters.http.app import RUN_WORKER_VARIABLE
    from conversa.adapters.http.sockets import keep_tcp_nodelay
    from conversa.adapters.metrics import multiprocess_mode

    settings = load_settings()
    with opened_service(settings):
        pass  # fail fast, before forking, on a database that is missing or unmigrated
    os.environ[RUN_WORKER_VARIABLE] = "false" if no_worker else "true"
    # With several processes, /metrics sums the counters of them all.
    keep_tcp_nodelay()  # uvicorn#3149: see conversa/adapters/http/sockets.py
    with multiprocess_mode(workers):
        uvicorn.run(
            "conversa.adapters.http.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # The C parser and the libuv loop (dependencies of Conversa; uvicorn's "auto"
            # would fall back silently to h11 and asyncio without them).
            http="httptools",
            loop="uvloop" if _has_uvloop() else "asyncio",
            log_level=settings.log_level.lower(),
            # uvicorn's lines in Conversa's format, on standard error, in every process.
            log_config=logs.logging_config(
                settings.log_level, logs.resolve_format(settings.log_format)
            ),
            # Conversa logs its own access line, without the query string (it can hold a
            # phone number) and with the request id.
            access_log=False,
            # A send in flight can be inside a worst-case provider call; let it record its
            # outcome rather than be cancelled.
            timeout_graceful_shutdown=round(SHUTDOWN_GRACE_SECONDS),
        )


def _has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


main.add_command(conversations)


@main.group()
def projection() -> None:
    """The conversa_messages read model."""


@projection.command()
# The rebuild reads the store message by message now, not in pages; the option stays,
# hidden and unused, so that scripts that pass it still run.
@click.option("--batch-size", default=2000, hidden=True, type=click.IntRange(1, 100_000))
def rebuild(batch_size: int) -> None:  # noqa: ARG001
    """Rebuild conversa_messages from every event stored: a new table, filled and indexed
    beside the old one, takes its place when complete (readers see the old one until then).
    """
    settings = load_settings()
    with opened_service(settings) as service, service.backend.projection_lock() as acquired:
        if not acquired:
            fail("another process is running the projection (a worker or a server); stop it first")
        projector = service.projector()
        head = projector.status().head
        started = time.perf_counter()
        with Progress(
            TextColumn("rebuilding conversa_messages"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("events", total=head)
            applied = projector.rebuild(on_progress=lambda n: progress.advance(task, n))
            progress.update(task, completed=head)
        elapsed = time.perf_counter() - started
        rate = applied / elapsed if elapsed > 0 else 0.0
        click.echo(f"rebuilt from {applied} events in {elapsed:.1f} s ({rate:,.0f} events/s)")


@projection.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def projection_status(as_json: bool) -> None:
    """Position, event-store head and lag of the projection."""
    settings = load_settings()
    with opened_service(settings) as service:
        status = service.projector().status()
    if as_json:
        click.echo(
            json.dumps({"position": status.position, "head": status.head, "lag": status.lag})
        )
    else:
        click.echo(f"position {status.position}\nhead     {status.head}\nlag      {status.lag}")


@main.group()
def token() -> None:
    """API tokens for the HTTP API."""


@token.command(name="create")
@click.argument("name")
@click.option("--console", is_flag=True, help="It may also sign in to the operator console.")
@click.option(
    "--allow-consent-override",
    is_flag=True,
    help='It may send with "consent": "ignore" (for legally required notices).',
)
def token_create(name: str, console: bool, allow_consent_override: bool) -> None:
    """Create a token and print its secret, which is shown this once only."""
    settings = load_settings()
    with opened_service(settings) as service:
        try:
            info, secret = service.tokens.create(
                name, console=console, allow_consent_override=allow_consent_override
            )
        except InvalidRequest as error:
            fail(f"{error.field}: {error.message}", 2)
    # The secret alone goes to standard output, for `TOKEN=$(conversa token create NAME)`;
    # what people read goes to standard error. It is never logged, only its digest stored.
    click.echo(
        f"created token {info.name} (id {info.id}); store this secret now, it is not shown again:",
        err=True,
    )
    click.echo(secret)


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(as_json: bool) -> None:
    """Every token, revoked ones included, oldest first."""
    settings = load_settings()
    with opened_service(settings) as service:
        tokens = service.tokens.list()
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in tokens], indent=2))
        return
    rows = [("NAME", "ID", "CREATED", "STATUS", "PERMISSIONS")]
    rows += [
        (
            t.name,
            str(t.id),
            t.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            t.status,
            _permissions(t),
        )
        for t in tokens
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[4]]).rstrip())


def _permissions(token: TokenInfo) -> str:
    granted = [
        name
        for name, given in (
            ("console", token.console),
            ("consent-override", token.allow_consent_override),
        )
        if given
    ]
    return ",".join(granted) or "-"


@token.command(name="revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke a token for good (its name stays taken)."""
    settings = load_settings()
    with opened_service(settings) as service:
        try:
            info = service.tokens.revoke(name)
        except InvalidRequest as error:
            fail(f"{error.field}: {error.message}", 2)
        except TokenNotFound as error:
            fail(f"{error}; `conversa token list` shows the tokens there are")
    revoked_at = info.revoked_at.strftime("%Y-%m-%d %H:%M:%SZ") if info.revoked_at else "?"
    click.echo(f"token {info.name} (id {info.id}) is revoked (since {revoked_at})")


@main.command(name="diagnose")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diagnose_command(as_json: bool) -> None:
    """Check the database, the projection, each channel's driver and the webhook secrets;
    exit 1 when anything needs action. Secrets are reported only as set or missing."""
    from rich.console import Console
    from rich.table import Table

    from conversa.app.diagnosis import diagnose

    settings = load_settings()
    checks = diagnose(settings, bootstrap)
    healthy = all(check.ok for check in checks)
    if as_json:
        click.echo(json.dumps({"ok": healthy, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        table = Table("check", "status", "detail")
        for check in checks:
            table.add_row(check.name, "ok" if check.ok else "[bold red]ACTION[/]", check.detail)
        Console().print(table)
    if not healthy:
        sys.exit(1)


@main.group()
def events() -> None:
    """Lifecycle subscribers: their dead letters."""


@events.command(name="dead-letters")
@click.option("--subscriber", help="Only this subscriber's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_letters(subscriber: str | None, as_json: bool) -> None:
    """Events a subscriber gave up on after all its attempts."""
    settings = load_settings()
    with opened_service(settings) as service:
        letters = service.subscriber_store.dead_letters(subscriber)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": letter.id,
                        "subscriber": letter.subscriber,
                        "event": letter.event,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "created_at": letter.created_at.isoformat(),
                    }
                    for letter in letters
                ],
                indent=2,
            )
        )
        return
    if not letters:
        click.echo("no dead letters")
        return
    for letter in letters:
        event = letter.event
        click.echo(
            f"{letter.id}\t{letter.subscriber}\t{event.get('type')} {event.get('message_id')}"
            f"\tafter {letter.attempts} attempts: {letter.error}"
        )


@events.command()
@click.argument("dead_letter_id", type=int)
def replay(dead_letter_id: int) -> None:
    """Hand a dead letter to its subscriber again; removed once it is taken."""
    from conversa.app.subscribers import replay as replay_letter

    settings = load_settings()
    with opened_service(settings) as service:
        letters = [d for d in service.subscriber_store.dead_letters() if d.id == dead_letter_id]
        if not letters:
            fail(f"no dead letter {dead_letter_id}")
        try:
            taken = replay_letter(
                letters[0], service.subscriptions, service.feed, service.subscriber_store
            )
        except LookupError as error:
            fail(str(error).strip("'\""))
    if not taken:
        fail(f"the subscriber failed again; dead letter {dead_letter_id} is kept")
    click.echo(f"dead letter {dead_letter_id} delivered and removed")
