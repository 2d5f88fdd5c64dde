"""LogDriver: one log line per send, the number masked, the text only when allowed."""

from __future__ import annotations

import logging
from uuid import UUID

import pytest

from conversa.adapters.providers.log import LogDriver
from conversa.app.ports import OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template
from conversa.domain.phone import PhoneNumber

LOGGER = "conversa.driver.log"
MESSAGE_ID = UUID("00000000-0000-4000-8000-000000000001")
NUMBER = PhoneNumber.parse("+15551234567")
TEXT = "your code is 8351"


def outbound(content: Content | None = None, channel: Channel = Channel.SMS) -> OutboundMessage:
    return OutboundMessage(
        message_id=MESSAGE_ID,
        channel=channel,
        to=NUMBER,
        sender=None,
        content=Body(TEXT) if content is None else content,
    )


def driver_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_send_succeeds_with_a_log_provider_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    driver = LogDriver(log_text=True)
    result = driver.send(outbound())
    assert result.ok
    assert result.error is None
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith("log-")
    assert len(result.provider_message_id) > len("log-")
    assert driver.send(outbound()).provider_message_id != result.provider_message_id
    assert driver.unavailable_reason(Channel.SMS) is None
    assert driver.unavailable_reason(Channel.WHATSAPP) is None


def test_send_logs_one_line_with_the_masked_number(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    result = LogDriver(log_text=True).send(outbound())
    lines = driver_lines(caplog)
    assert len(lines) == 1
    (line,) = lines
    assert "\n" not in line
    assert NUMBER.masked() in line
    assert NUMBER.e164 not in line
    assert "5551234" not in line
    assert str(MESSAGE_ID) in line
    assert str(result.provider_message_id) in line
    assert TEXT in line  # allowed here


def test_without_log_text_the_body_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert LogDriver(log_text=False).send(outbound()).ok
    (line,) = driver_lines(caplog)
    assert TEXT not in line
    assert "8351" not in line
    assert f"<{len(TEXT)} chars>" in line
    assert NUMBER.e164 not in line


def test_without_log_text_template_variables_are_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    content = Template("otp", ("8351", "ten minutes"))
    assert LogDriver(log_text=False).send(outbound(content, Channel.WHATSAPP)).ok
    (line,) = driver_lines(caplog)
    assert "otp" in line
    assert "8351" not in line
    assert "ten minutes" not in line


def test_with_log_text_template_variables_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    content = Template("otp", ("8351",))
    assert LogDriver(log_text=True).send(outbound(content, Channel.WHATSAPP)).ok
    (line,) = driver_lines(caplog)
    assert "8351" in line


def test_with_a_templates_file_only_its_templates_pass() -> None:
    from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate

    catalog = TemplateCatalog.parse(
        '[order_shipped]\nwhatsapp_cloud = { name = "order_shipped", language = "en_US" }\n'
    )
    driver = LogDriver(log_text=True, templates=catalog)
    driver.validate(outbound(Template("order_shipped", ("1Z9",)), Channel.WHATSAPP))
    driver.validate(outbound(Body("free text is always fine")))
    with pytest.raises(UnknownTemplate) as refused:
        driver.validate(outbound(Template("nope", ()), Channel.WHATSAPP))
    assert refused.value.field == "template.name"
    # Without a templates file, the log driver takes any name (development).
    LogDriver(log_text=True).validate(outbound(Template("nope", ()), Channel.WHATSAPP))
