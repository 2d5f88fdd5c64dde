"""Configuration from the ``CONVERSA_*`` environment (and a ``.env`` file)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from conversa.domain.quiet_hours import InvalidQuietHours, QuietHours

PREFIX = "CONVERSA_"
#: Seconds an operation keeps trying to reach the database before answering 503.
DEFAULT_DB_TIMEOUT = 5.0
_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?\s*$")


#: The drivers each channel's setting may name.
DRIVERS: dict[str, tuple[str, ...]] = {
    "sms_driver": ("twilio", "vonage", "africastalking", "log"),
    "whatsapp_driver": ("whatsapp_cloud", "twilio", "log"),
}


class SettingsError(Exception):
    """A configuration value is unusable; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    database_url: str = "sqlite:///conversa.sqlite3"
    db_timeout_seconds: float = Field(default=DEFAULT_DB_TIMEOUT, ge=1, le=300)
    #: A driver name, or an ordered failover list of them (``twilio,vonage``).
    sms_driver: str = "log"
    whatsapp_driver: str = "log"
    #: Consecutive failures that open a driver's circuit breaker; how long it stays open.
    failover_threshold: int = Field(default=5, ge=1, le=1000)
    failover_cooldown_seconds: float = Field(default=30.0, gt=0, le=86400)
    log_messages: bool = True
    max_retries: int = Field(default=3, ge=0, le=20)
    retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    attempt_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    #: Sends that may wait on providers at once in one server process (see http/pools.py).
    send_concurrency: int = Field(default=64, ge=1, le=1000)
    #: Provider calls one driver may have in flight in the dispatcher (asynchronous and
    #: batch sends), and the messages it claims at once (see app/drain.py).
    dispatch_concurrency: int = Field(default=64, ge=1, le=1000)
    #: The dispatcher's safety net: how often it looks for queued messages without being
    #: woken (PostgreSQL wakes it with NOTIFY; SQLite only within one process).
    dispatch_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    #: Attempts per second of each driver's dispatcher (unset: unpaced); see app/pacing.py.
    log_max_per_second: float | None = Field(default=None, gt=0, le=1_000_000)
    twilio_max_per_second: float | None = Field(default=None, gt=0, le=1_000_000)
    whatsapp_cloud_max_per_second: float | None = Field(default=None, gt=0, le=1_000_000)
    store_body: bool = True
    #: Refuse a free-form WhatsApp body outside the 24-hour customer service window.
    whatsapp_window_check: bool = False
    #: Inbound keywords that change consent: the whole message, trimmed, in any case
    #: (comma-separated); see app/consent_keywords.py.
    opt_out_keywords: str = "STOP,STOPALL,UNSUBSCRIBE,CANCEL,END,QUIT,REVOKE,OPTOUT"
    opt_in_keywords: str = "START,YES,UNSTOP"
    #: Automatic answers to those keywords and to HELP/INFO (unset: none).
    opt_out_reply: str | None = None
    opt_in_reply: str | None = None
    help_reply: str | None = None
    #: The largest inbound attachment ``GET /conversa/messages/{id}/media/{n}`` streams.
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    #: Writes one transaction of the process's group commit takes at most (1: none, each
    #: write commits alone; see app/writer.py).
    write_batch_size: int = Field(default=100, ge=1, le=1000)
    #: How long a status report for a provider id no send has claimed waits for that send.
    parked_report_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    redact_provider_response: bool = True
    #: Local time when ``marketing`` sends wait, like ``21:00-08:00`` (unset: none).
    quiet_hours: str | None = None
    webhook_base_url: str | None = None
    rate_limit: str = "120/minute"
    rate_limit_storage: str = "memory://"
    #: Bound of each call to the rate-limit storage; see adapters/http/ratelimit.py.
    rate_limit_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    #: What a request gets when the storage fails: let through uncounted (open, the
    #: default: a Redis outage must not become an outage of sending) or 503 (closed).
    rate_limit_on_error: Literal["open", "closed"] = "open"
    templates_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Unset: text when standard error is a terminal, JSON lines otherwise.
    log_format: Literal["json", "text"] | None = None

    #: The operator console's cookie-signing key; unset: a random key kept in
    #: ``console_secret_file`` (created on first use, mode 0600).
    console_secret: SecretStr | None = None
    console_secret_file: Path = Path("conversa-console.key")
    #: How long a console sign-in lasts (from the sign-in, not from the last request).
    console_session_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)

    events_url: str | None = None
    events_secret: SecretStr | None = Field(default=None, validate_default=True)
    events_max_attempts: int = Field(default=50, ge=1, le=1000)
    subscribers: str | None = None
    subscriber_max_attempts: int = Field(default=10, ge=1, le=1000)
    subscriber_retry_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    subscriber_retry_max_seconds: float = Field(default=60.0, gt=0, le=86400)

    twilio_sid: str | None = None
    twilio_token: SecretStr | None = None
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"

    vonage_api_key: str | None = None
    vonage_api_secret: SecretStr | None = None
    vonage_sms_from: str | None = None
    vonage_signature_secret: SecretStr | None = None
    vonage_signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = "md5hash"
    vonage_api_base: str = "https://rest.nexmo.com"

    africastalking_username: str | None = None
    africastalking_api_key: SecretStr | None = None
    africastalking_from: str | None = None
    africastalking_webhook_token: SecretStr | None = None
    africastalking_api_base: str = "https://api.africastalking.com"

    whatsapp_phone_id: str | None = None
    whatsapp_token: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_api_base: str = "https://graph.facebook.com"
    whatsapp_api_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")

    @field_validator("sms_driver", "whatsapp_driver")
    @classmethod
    def _driver_list(cls, value: str, info: ValidationInfo) -> str:
        allowed = DRIVERS[info.field_name or ""]
        names = [name.strip() for name in value.split(",")]
        if not all(names):
            msg = "must be a driver name or a comma-separated list of them"
            raise ValueError(msg)
        for name in names:
            if name not in allowed:
                msg = f"unknown driver {name!r}: must be one of {', '.join(allowed)}"
                raise ValueError(msg)
        if len(set(names)) != len(names):
            msg = "names a driver twice"
            raise ValueError(msg)
        if len(names) > 1 and "log" in names:
            msg = "log cannot be part of a failover list"
            raise ValueError(msg)
        return ",".join(names)

    @property
    def sms_drivers(self) -> tuple[str, ...]:
        return tuple(self.sms_driver.split(","))

    @property
    def whatsapp_drivers(self) -> tuple[str, ...]:
        return tuple(self.whatsapp_driver.split(","))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://", "sqlite:///")):
            msg = "must look like postgresql://user:pass@host:port/db or sqlite:///path"
            raise ValueError(msg)
        return value

    @field_validator("events_secret")
    @classmethod
    def _events_secret_with_url(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if info.data.get("events_url") and value is None:
            msg = "must be set when CONVERSA_EVENTS_URL is: events are always signed"
            raise ValueError(msg)
        return value

    @field_validator("subscribers")
    @classmethod
    def _dotted_paths(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for path in (part.strip() for part in value.split(",") if part.strip()):
            if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", path):
                msg = f"{path!r} is not a module:function path"
                raise ValueError(msg)
        return value

    @field_validator(
        "webhook_base_url",
        "events_url",
        "twilio_api_base",
        "whatsapp_api_base",
        "vonage_api_base",
        "africastalking_api_base",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            msg = "must be an http:// or https:// URL"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not _RATE.match(value):
            msg = "must look like 120/minute (a count per second, minute, hour or day)"
            raise ValueError(msg)
        return value.strip()

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_storage(cls, value: str) -> str:
        if not re.match(
            r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster|memcached)://", value
        ):
            msg = "must be memory:// or a shared storage URI such as redis://host:6379"
            raise ValueError(msg)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(QuietHours.parse(value))
        except InvalidQuietHours as error:
            raise ValueError(str(error)) from None

    def max_per_second(self) -> dict[str, float | None]:
        """Each driver's pace, by driver name."""
        return {
            "log": self.log_max_per_second,
            "twilio": self.twilio_max_per_second,
            "whatsapp_cloud": self.whatsapp_cloud_max_per_second,
        }

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the process environment and ``.env``, or only from ``environ``.

        Raises :class:`SettingsError`: one line naming each bad variable.
        """
        try:
            if environ is None:
                return cls()
            values = {
                key[len(PREFIX) :].lower(): value
                for key, value in environ.items()
                if key.startswith(PREFIX) and value != ""
            }
            return _GivenMappingOnly(**cast(dict[str, Any], values))
        except ValidationError as error:
            lines = []
            for problem in error.errors():
                variable = PREFIX + "_".join(str(part) for part in problem["loc"][:1]).upper()
                lines.append(f"{variable}: {_describe(problem['msg'])}")
            raise SettingsError("; ".join(lines)) from None


class _GivenMappingOnly(Settings):
    """Settings read from an explicit mapping alone: no process environment, no ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 - pydantic-settings' signature
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _describe(message: str) -> str:
    return message.removeprefix("Value error, ")
