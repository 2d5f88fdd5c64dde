"""The composition root: the one place where Conversa is wired from its settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import entry_points
from uuid import UUID

import httpx
from eventsourcing.persistence import PersistenceError

from conversa._version import installed_version
from conversa.adapters.metrics import PrometheusMetrics
from conversa.adapters.persistence import backend_from_url
from conversa.adapters.providers.africastalking.driver import (
    AfricasTalkingConfig,
    AfricasTalkingDriver,
)
from conversa.adapters.providers.log import LogDriver
from conversa.adapters.providers.templates import TemplateCatalog
from conversa.adapters.providers.twilio import TwilioConfig, TwilioDriver
from conversa.adapters.providers.vonage.driver import VonageConfig, VonageDriver
from conversa.adapters.providers.whatsapp_cloud import WhatsAppCloudConfig, WhatsAppCloudDriver
from conversa.adapters.subscribers.http import HttpEventSubscriber
from conversa.app.application import ConversaApp
from conversa.app.failover import Breaker, FailoverDriver, monotonic
from conversa.app.ports import Driver, StorageBackend
from conversa.app.provider_calls import PROVIDER_TIMEOUTS, WORST_CASE_PROVIDER_CALL
from conversa.app.service import ConversaService
from conversa.app.settings import Settings, SettingsError
from conversa.app.subscribers import Subscription
from conversa.app.telemetry import Telemetry
from conversa.app.writer import BatchingWriter, DirectWriter, Writer
from conversa.domain.channel import Channel
from conversa.events import LifecycleEvent


class SchemaMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the database has no Conversa tables yet: run `conversa migrate`")


def bootstrap(
    settings: Settings,
    *,
    drivers: Mapping[Channel, Driver] | None = None,
    backend: StorageBackend | None = None,
    clock: Callable[[], datetime] | None = None,
    jitter: Callable[[float], float] | None = None,
    telemetry: Telemetry | None = None,
) -> ConversaService:
    """Build the service. ``drivers`` and ``backend`` replace the configured ones; ``clock``
    and ``jitter`` (a random wait up to the given ceiling) make time deterministic;
    ``telemetry`` replaces the Prometheus metrics."""
    check_attempt_lease(settings)
    on_close: Callable[[], None] | None = None
    # First, so that a bad templates file stops start-up before anything is opened.
    templates = TemplateCatalog.load(settings.templates_file)
    if drivers is None:
        configured = configured_drivers(settings, templates=templates)
        drivers, on_close = configured.drivers, configured.close
    try:
        backend = backend or backend_from_url(
            settings.database_url, db_timeout=settings.db_timeout_seconds
        )
        _reach(backend)
        app = ConversaApp(env=backend.application_env(create_tables=False))
    except BaseException:
        if on_close is not None:
            on_close()
        raise
    try:
        view = backend.messages_view(app)
        payloads = backend.payload_store(app)
        subscriber_store = backend.subscriber_store(app)
        # Every table answers, or the schema is older than this code: say so at start-up.
        app.recorder.max_notification_id()
        view.max_tracking_id(app.name)
        view.due(datetime.now(UTC), 1)
        payloads.get(UUID(int=0))
        subscriber_store.position("")
    except PersistenceError as error:
        app.close()
        if on_close is not None:
            on_close()
        if "does not exist" in str(error) or "no such table" in str(error):
            raise SchemaMissing from None
        raise
    closers = [on_close] if on_close is not None else []
    service = ConversaService(
        settings=settings,
        app=app,
        view=view,
        drivers=drivers,
        backend=backend,
        payloads=payloads,
        subscriber_store=subscriber_store,
        on_close=lambda: _close_all(closers),
        clock=clock,
        jitter=jitter,
        telemetry=telemetry or PrometheusMetrics(),
        writer=make_writer(app, settings),
    )
    service.fallback_texts = templates.sms_text
    try:
        closers.extend(configure_subscribers(service, settings))
    except BaseException:
        service.close()
        raise
    return service


def make_writer(app: ConversaApp, settings: Settings) -> Writer:
    """The group commit on either store (``CONVERSA_WRITE_BATCH_SIZE`` writes per
    transaction at most), or, at 1, each write in a transaction of its own.

    SQLite gains as much as PostgreSQL: it too serialises writers (one at a time) and
    syncs its journal once per transaction."""
    if settings.write_batch_size == 1:
        return DirectWriter(app)
    return BatchingWriter(app, max_batch=settings.write_batch_size)


def _reach(backend: StorageBackend) -> None:
    """Connect once, directly, before the pools: a database that cannot be reached (down,
    TLS refused, a wrong password) is reported in the driver's own words rather than as a
    pool that timed out, and one without Conversa's tables as :class:`SchemaMissing`."""
    probe = backend.health_probe()
    try:
        probe.check()
    except PersistenceError as error:
        if "does not exist" in str(error) or "no such table" in str(error):
            raise SchemaMissing from None
        raise
    finally:
        probe.close()


def configure_subscribers(service: ConversaService, settings: Settings) -> list[Callable[[], None]]:
    """Register the subscribers the settings name: ``CONVERSA_SUBSCRIBERS`` (``module:function``
    paths), the ``conversa.subscribers`` entry points of installed packages, and the HTTP
    subscriber of ``CONVERSA_EVENTS_URL``. Returns what to close at shutdown.

    A configured subscriber starts from the beginning of the history the first time it
    runs (then from its stored position). Configuration reaches the processes of a
    deployment at different times, and the processes that record events (``serve
    --no-worker``, the command line) need not have it at all: "from now" would depend on
    which process happened to start first, and silently skip what the others recorded.
    """
    paths = [p.strip() for p in (settings.subscribers or "").split(",") if p.strip()]
    for path in paths:
        service.subscribe(LifecycleEvent, _load(path), name=path, start="beginning")
    for entry_point in entry_points(group="conversa.subscribers"):
        service.subscribe(
            LifecycleEvent,
            entry_point.load(),
            name=f"entry-point:{entry_point.name}",
            start="beginning",
        )
    if settings.events_url is None or settings.events_secret is None:
        return []
    client = httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0), follow_redirects=False)
    # Registered as is (no stored position yet: from the beginning, as the others).
    service.subscriptions.append(
        Subscription(
            name="events-url",
            handler=HttpEventSubscriber(
                settings.events_url, settings.events_secret.get_secret_value(), client
            ),
            max_attempts=settings.events_max_attempts,
            retry_base_seconds=settings.subscriber_retry_base_seconds,
            retry_max_seconds=settings.subscriber_retry_max_seconds,
        )
    )
    return [client.close]


def _load(path: str) -> Callable[[LifecycleEvent], object]:
    module_name, _, attribute = path.partition(":")
    try:
        target: object = import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise SettingsError(f"CONVERSA_SUBSCRIBERS: cannot load {path} ({error})") from None
    if not callable(target):
        raise SettingsError(f"CONVERSA_SUBSCRIBERS: {path} is not callable")
    return target


@dataclass(frozen=True)
class Migration:
    """What ``migrate`` did: the tables it created (none when every one was there)."""

    created: tuple[str, ...]


def migrate(settings: Settings, *, backend: StorageBackend | None = None) -> Migration:
    """Create every table Conversa needs; safe to run any number of times."""
    backend = backend or backend_from_url(
        settings.database_url, db_timeout=settings.db_timeout_seconds
    )
    before = backend.tables()
    backend.prepare()
    app = ConversaApp(env=backend.application_env(create_tables=True))
    try:
        backend.messages_view(app)
        backend.payload_store(app)
        backend.subscriber_store(app)
    finally:
        app.close()
    return Migration(created=tuple(sorted(backend.tables() - before)))


def open_service(settings: Settings, *, create_tables: bool = False) -> ConversaService:
    """The service for a library user (``ConversaService.from_env``).

    The embedded SQLite store is created on first use, so that a script needs no
    ``conversa migrate``. A PostgreSQL database is migrated only when asked (``create_tables``):
    its runtime role may have no right to change the schema, and its upgrades are a
    deploy step.
    """
    check_attempt_lease(settings)  # before anything is created
    backend = backend_from_url(settings.database_url)
    embedded = backend.kind == "sqlite"
    if create_tables or (embedded and not backend.tables()):  # a new file (or directory)
        migrate(settings, backend=backend)
        return bootstrap(settings, backend=backend)
    try:
        return bootstrap(settings, backend=backend)
    except SchemaMissing:
        if not embedded:
            raise
    migrate(settings, backend=backend)  # a file made by an older version: upgrade it
    return bootstrap(settings, backend=backend)


#: The provider HTTP client's timeouts (see :mod:`conversa.app.provider_calls`).
PROVIDER_TIMEOUT = httpx.Timeout(
    connect=PROVIDER_TIMEOUTS.connect,
    read=PROVIDER_TIMEOUTS.read,
    write=PROVIDER_TIMEOUTS.write,
    pool=PROVIDER_TIMEOUTS.pool,
)
#: Connections beyond one per concurrent send: the dispatcher makes one attempt at a time.
BACKGROUND_CONNECTIONS = 4


def provider_limits(send_concurrency: int) -> httpx.Limits:
    """The connection pool of the provider HTTP client, shared by all drivers and threads:
    one connection for each send that may be in flight (``CONVERSA_SEND_CONCURRENCY``,
    the size of the server's provider thread pool) and a few for the dispatcher, so that
    no send waits for a connection (and times out after ``PROVIDER_TIMEOUT.pool``)."""
    return httpx.Limits(
        max_connections=send_concurrency + BACKGROUND_CONNECTIONS,
        max_keepalive_connections=min(20, send_concurrency + BACKGROUND_CONNECTIONS),
        keepalive_expiry=30.0,
    )


def check_attempt_lease(settings: Settings) -> None:
    """Refuse a lease that can end while its attempt still waits for the provider: another
    dispatcher would then take the message over and send it a second time."""
    floor = WORST_CASE_PROVIDER_CALL
    if settings.attempt_lease_seconds <= floor:
        raise SettingsError(
            f"CONVERSA_ATTEMPT_LEASE_SECONDS: must be more than {floor:g} seconds, the longest "
            "a provider call can take (pool, connect, write and read timeouts), or a second "
            "worker could repeat an attempt still in flight"
        )


@dataclass
class ConfiguredDrivers:
    """The driver of each channel, and the HTTP client they share, to close at shutdown."""

    drivers: dict[Channel, Driver]
    client: httpx.Client | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def provider_http_client(
    send_concurrency: int = Settings.model_fields["send_concurrency"].default,
) -> httpx.Client:
    """The one pooled HTTP client of the provider drivers."""
    return httpx.Client(
        timeout=PROVIDER_TIMEOUT,
        limits=provider_limits(send_concurrency),
        # name/x.y.z, the form Meta's spec asks of a User-Agent.
        headers={"User-Agent": f"conversa/{installed_version()}"},
        follow_redirects=False,
    )


def configured_drivers(
    settings: Settings,
    *,
    breaker_clock: Callable[[], float] | None = None,
    templates: TemplateCatalog | None = None,
) -> ConfiguredDrivers:
    """The drivers chosen by ``CONVERSA_SMS_DRIVER`` and ``CONVERSA_WHATSAPP_DRIVER``: a
    channel with a list gets a :class:`FailoverDriver` over them. ``breaker_clock``: the
    seconds the circuit breakers count their cooldown with (monotonic time by default).

    One driver instance per name: with ``twilio`` on both channels, one TwilioDriver serves
    both. The templates file is read here, so a malformed one stops start-up (SettingsError
    naming ``CONVERSA_TEMPLATES_FILE``) even while only the log driver is in use.
    """
    if templates is None:
        templates = TemplateCatalog.load(settings.templates_file)
    chosen = {Channel.SMS: settings.sms_drivers, Channel.WHATSAPP: settings.whatsapp_drivers}
    client: httpx.Client | None = None

    def shared_client() -> httpx.Client:  # made on first need: log alone opens nothing
        nonlocal client
        if client is None:
            client = provider_http_client(settings.send_concurrency)
        return client

    factories: dict[str, Callable[[], Driver]] = {
        "log": lambda: LogDriver(log_text=settings.store_body, templates=templates),
        "twilio": lambda: TwilioDriver(
            TwilioConfig.from_settings(settings), shared_client(), templates
        ),
        "whatsapp_cloud": lambda: WhatsAppCloudDriver(
            WhatsAppCloudConfig.from_settings(settings), shared_client(), templates
        ),
        "vonage": lambda: VonageDriver(VonageConfig.from_settings(settings), shared_client()),
        "africastalking": lambda: AfricasTalkingDriver(
            AfricasTalkingConfig.from_settings(settings), shared_client()
        ),
    }
    names = sorted({name for names in chosen.values() for name in names})
    by_name = {name: factories[name]() for name in names}
    # One breaker per driver, shared by the channels whose lists name it.
    breakers = {
        name: Breaker(
            name,
            threshold=settings.failover_threshold,
            cooldown=settings.failover_cooldown_seconds,
            clock=breaker_clock or monotonic,
        )
        for name in names
    }
    drivers: dict[Channel, Driver] = {}
    for channel, listed in chosen.items():
        if len(listed) == 1:
            drivers[channel] = by_name[listed[0]]
        else:
            drivers[channel] = FailoverDriver(
                [by_name[name] for name in listed], {name: breakers[name] for name in listed}
            )
    return ConfiguredDrivers(drivers=drivers, client=client)


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in closers:
        close()
