"""Conversa: SMS and WhatsApp delivery with an exact, event-sourced record of every message."""

from conversa.app.results import MessageState, SendResult
from conversa.app.service import ConversaService

__all__ = ["ConversaService", "MessageState", "SendResult"]
