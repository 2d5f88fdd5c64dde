"""The composition root: the one place where Conversa is wired from its settings."""

from __future__ import annotations

from collections.abc import Mapping

from eventsourcing.persistence import OperationalError, ProgrammingError

from conversa.adapters.persistence import backend_from_url
from conversa.adapters.providers.log import LogDriver, MissingDriver
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
) -> ConversaService:
    """Build the service. ``drivers`` and ``backend`` replace the configured ones (tests)."""
    backend = backend or backend_from_url(settings.database_url)
    app = ConversaApp(env=backend.application_env(create_tables=False))
    try:
        view = backend.messages_view(app)
        app.recorder.max_notification_id()
        view.max_tracking_id(app.name)
    except (ProgrammingError, OperationalError) as error:
        app.close()
        if "does not exist" in str(error) or "no such table" in str(error):
            raise SchemaMissing from None
        raise
    return ConversaService(
        settings=settings,
        app=app,
        view=view,
        drivers=drivers or configured_drivers(settings),
        backend=backend,
    )


def migrate(settings: Settings, *, backend: StorageBackend | None = None) -> None:
    """Create every table Conversa needs; safe to run any number of times."""
    backend = backend or backend_from_url(settings.database_url)
    backend.prepare()
    app = ConversaApp(env=backend.application_env(create_tables=True))
    try:
        backend.messages_view(app)
    finally:
        app.close()


def configured_drivers(settings: Settings) -> dict[Channel, Driver]:
    log_driver = LogDriver(log_text=settings.store_body)
    chosen = {Channel.SMS: settings.sms_driver, Channel.WHATSAPP: settings.whatsapp_driver}
    return {
        channel: log_driver if name == "log" else MissingDriver(name)
        for channel, name in chosen.items()
    }
