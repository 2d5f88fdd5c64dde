"""``conversa diagnose``: what an operator must fix before Conversa can do its work.

Each check names a thing, says whether it is fine, and if not what to do. Secrets are
only ever reported as set or missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from eventsourcing.persistence import PersistenceError

from conversa.app.failover import FailoverDriver
from conversa.app.service import ConversaService
from conversa.app.settings import Settings, SettingsError
from conversa.domain.channel import Channel

#: A read model further behind than this many events needs a worker's attention.
MAX_HEALTHY_LAG = 1000


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def diagnose(
    settings: Settings, open_service: Callable[[Settings], ConversaService]
) -> list[Check]:
    checks = [*configuration_checks(settings)]
    try:
        service = open_service(settings)
    except SettingsError as error:  # a value only the composition root can judge
        checks.insert(0, Check("configuration", False, _first_line(error)))
        return checks
    except (PersistenceError, OSError, RuntimeError) as error:
        # RuntimeError: SchemaMissing, whose message says to run `conversa migrate`.
        checks.insert(0, Check("database", False, _first_line(error)))
        return checks
    with service:
        checks[0:0] = service_checks(service)
    return checks


def service_checks(service: ConversaService) -> list[Check]:
    """The checks an open service can answer (database, projection, reports, subscribers,
    drivers), without opening or closing anything: what the console's overview shows."""
    return [
        Check("database", True, f"{service.backend.kind}, schema current"),
        _projection_check(service),
        _unmatched_reports_check(service),
        _dead_letters_check(service),
        *_driver_checks(service),
    ]


def _projection_check(service: ConversaService) -> Check:
    projector = service.projector()
    status = projector.status()
    detail = f"position {status.position}, head {status.head}, lag {status.lag}"
    # The projection runs in another process; fold its next batch here, writing nothing,
    # to see whether it can go on at all.
    stall = projector.check_next_batch() if status.lag else None
    if stall is not None:
        return Check(
            "projection",
            False,
            f"{detail}: stalled, the events after position {stall.position} cannot be "
            f"applied ({stall.error}); the worker retries every few seconds and the list "
            "and due retries stay stale until it goes on. Stop every worker and server, "
            "run `conversa projection rebuild`, then start them again",
        )
    if status.lag > MAX_HEALTHY_LAG:
        return Check("projection", False, f"{detail}: is a worker (or a server) running?")
    return Check("projection", True, detail)


def _unmatched_reports_check(service: ConversaService) -> Check:
    """Reports for provider ids no send has claimed wait for it a while, then expire: on a
    provider account other tools also send from, both are normal. Parked reports older
    than the window are not: nothing expires them, so no worker runs."""
    counts = service.reporter.parked_counts(service.clock())
    hours = service.settings.parked_report_hours
    detail = (
        f"{counts.parked} parked (waiting for their send, for up to {hours:g} h), "
        f"{counts.expired} expired unmatched"
    )
    if counts.overdue:
        return Check(
            "status reports",
            False,
            f"{detail}; {counts.overdue} parked longer than CONVERSA_PARKED_REPORT_HOURS: "
            "is a worker (or a server) running?",
        )
    if counts.expired:
        detail += " (do other tools or deployments use these provider credentials?)"
    return Check("status reports", True, detail)


def _dead_letters_check(service: ConversaService) -> Check:
    letters = service.subscriber_store.dead_letters()
    if letters:
        names = ", ".join(sorted({letter.subscriber for letter in letters}))
        return Check(
            "subscribers",
            False,
            f"{len(letters)} dead letter(s) ({names}): see `conversa events dead-letters`",
        )
    return Check("subscribers", True, f"{len(service.subscriptions)} configured, no dead letters")


def _driver_checks(service: ConversaService) -> list[Check]:
    checks = []
    for channel in Channel:
        driver = service.drivers[channel]
        reason = driver.unavailable_reason(channel)
        name = f"{channel} driver"
        checks.append(
            Check(name, True, f"{driver.name}, available")
            if reason is None
            else Check(name, False, f"{driver.name}, unavailable: {reason}")
        )
        if isinstance(driver, FailoverDriver):
            checks.append(Check(f"{channel} failover", True, failover_summary(driver, channel)))
    return checks


def failover_summary(driver: FailoverDriver, channel: Channel) -> str:
    """The list in order, each member's availability and its breaker in this process."""
    parts = []
    for member in driver.members:
        status = driver.breakers[member.name].status()
        available = "available" if member.unavailable_reason(channel) is None else "unavailable"
        parts.append(
            f"{member.name} ({available}, breaker {status.state.value}, "
            f"{status.error_rate:.0%} errors of the last {status.outcomes})"
        )
    return " -> ".join(parts) + " (breakers are per process: see /metrics of each server)"


def configuration_checks(settings: Settings) -> list[Check]:
    """Webhook settings the chosen drivers need to hear back from their providers."""
    in_use = {*settings.sms_drivers, *settings.whatsapp_drivers}
    checks = []
    if in_use - {"log"}:
        checks.append(
            Check("webhook base URL", True, settings.webhook_base_url)
            if settings.webhook_base_url
            else Check(
                "webhook base URL",
                False,
                "CONVERSA_WEBHOOK_BASE_URL is not set: providers cannot report delivery",
            )
        )
    if "twilio" in in_use:
        checks.append(
            _secret("twilio webhook secret", "CONVERSA_TWILIO_TOKEN", settings.twilio_token)
        )
    if "vonage" in in_use:
        checks.append(
            _secret(
                "vonage webhook secret",
                "CONVERSA_VONAGE_SIGNATURE_SECRET",
                settings.vonage_signature_secret,
            )
        )
    if "africastalking" in in_use:
        checks.append(
            _secret(
                "africastalking webhook token",
                "CONVERSA_AFRICASTALKING_WEBHOOK_TOKEN",
                settings.africastalking_webhook_token,
            )
        )
    if "whatsapp_cloud" in in_use:
        checks.append(
            _secret(
                "whatsapp_cloud webhook secret",
                "CONVERSA_WHATSAPP_APP_SECRET",
                settings.whatsapp_app_secret,
            )
        )
        checks.append(
            _secret(
                "whatsapp_cloud verify token",
                "CONVERSA_WHATSAPP_VERIFY_TOKEN",
                settings.whatsapp_verify_token,
            )
        )
    return checks


def _secret(name: str, variable: str, value: object) -> Check:
    if value is None:
        return Check(name, False, f"{variable} is missing: webhooks will be refused (403)")
    return Check(name, True, f"{variable} is set")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
