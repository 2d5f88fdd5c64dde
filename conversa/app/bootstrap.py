"""The composition root: the one place where Conversa is wired from its settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

import httpx
from eventsourcing.persistence import OperationalError, ProgrammingError

from conversa.adapters.persistence import backend_from_url
from conversa.adapters.providers.log import LogDriver
from conversa.adapters.providers.templates import TemplateCatalog
from conversa.adapters.providers.twilio import TwilioConfig, TwilioDriver
from conversa.adapters.providers.whatsapp_cloud import WhatsAppCloudConfig, WhatsAppCloudDriver
from conversa.app.application import ConversaApp
from conversa.app.ports import Driver, StorageBackend
from conversa.app.service import ConversaService
from conversa.app.settings import Settings
from conversa.domain.channel import Channel


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
) -> ConversaService:
    """Build the service. ``drivers`` and ``backend`` replace the configured ones; ``clock``
    and ``jitter`` (a random wait up to the given ceiling) make time deterministic."""
    on_close: Callable[[], None] | None = None
    if drivers is None:
        # First, so that a bad templates file stops start-up before anything is opened.
        configured = configured_drivers(settings)
        drivers, on_close = configured.drivers, configured.close
    try:
        backend = backend or backend_from_url(settings.database_url)
        app = ConversaApp(env=backend.application_env(create_tables=False))
    except BaseException:
        if on_close is not None:
            on_close()
        raise
    try:
        view = backend.messages_view(app)
        app.recorder.max_notification_id()
        view.max_tracking_id(app.name)
    except (ProgrammingError, OperationalError) as error:
        app.close()
        if on_close is not None:
            on_close()
        if "does not exist" in str(error) or "no such table" in str(error):
            raise SchemaMissing from None
        raise
    return ConversaService(
        settings=settings,
        app=app,
        view=view,
        drivers=drivers,
        backend=backend,
        payloads=backend.payload_store(app),
        on_close=on_close,
        clock=clock,
        jitter=jitter,
    )


def migrate(settings: Settings, *, backend: StorageBackend | None = None) -> None:
    """Create every table Conversa needs; safe to run any number of times."""
    backend = backend or backend_from_url(settings.database_url)
    backend.prepare()
    app = ConversaApp(env=backend.application_env(create_tables=True))
    try:
        backend.messages_view(app)
        backend.payload_store(app)
    finally:
        app.close()


#: Timeouts of the provider HTTP client, in seconds. A send runs inside an API request, so
#: a provider that does not answer must not hold it for long; a read timeout is reported as
#: a transient ``<driver>_timeout`` and retried by the worker.
PROVIDER_TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=5.0)
#: Connection pool of the provider HTTP client, shared by all drivers and threads.
PROVIDER_LIMITS = httpx.Limits(
    max_connections=50, max_keepalive_connections=20, keepalive_expiry=30.0
)


@dataclass
class ConfiguredDrivers:
    """The driver of each channel, and the HTTP client they share, to close at shutdown."""

    drivers: dict[Channel, Driver]
    client: httpx.Client | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def provider_http_client() -> httpx.Client:
    """The one pooled HTTP client of the provider drivers."""
    return httpx.Client(
        timeout=PROVIDER_TIMEOUT,
        limits=PROVIDER_LIMITS,
        headers={"User-Agent": f"conversa/{_version()}"},  # name/x.y.z, as Meta's spec asks
        follow_redirects=False,
    )


def _version() -> str:
    try:
        return version("conversa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def configured_drivers(settings: Settings) -> ConfiguredDrivers:
    """The drivers chosen by ``CONVERSA_SMS_DRIVER`` and ``CONVERSA_WHATSAPP_DRIVER``.

    One driver instance per name: with ``twilio`` on both channels, one TwilioDriver serves
    both. The templates file is read here, so a malformed one stops start-up (SettingsError
    naming ``CONVERSA_TEMPLATES_FILE``) even while only the log driver is in use.
    """
    templates = TemplateCatalog.load(settings.templates_file)
    chosen = {Channel.SMS: settings.sms_driver, Channel.WHATSAPP: settings.whatsapp_driver}
    client: httpx.Client | None = None

    def shared_client() -> httpx.Client:  # made on first need: log alone opens nothing
        nonlocal client
        if client is None:
            client = provider_http_client()
        return client

    factories: dict[str, Callable[[], Driver]] = {
        "log": lambda: LogDriver(log_text=settings.store_body, templates=templates),
        "twilio": lambda: TwilioDriver(
            TwilioConfig.from_settings(settings), shared_client(), templates
        ),
        "whatsapp_cloud": lambda: WhatsAppCloudDriver(
            WhatsAppCloudConfig.from_settings(settings), shared_client(), templates
        ),
    }
    by_name = {name: factories[name]() for name in sorted(set(chosen.values()))}
    return ConfiguredDrivers(
        drivers={channel: by_name[name] for channel, name in chosen.items()}, client=client
    )
