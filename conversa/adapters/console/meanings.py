"""What providers' error codes mean, in words an operator can act on."""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    # Twilio
    "21211": "The 'To' number is not a valid phone number.",
    "21408": "Sending to this region is not enabled on the Twilio account.",
    "21610": "The recipient replied STOP to this sender: Twilio blocks messages to them.",
    "21614": "The 'To' number is not a mobile number that can receive SMS.",
    "30003": "The handset is unreachable (switched off or out of coverage).",
    "30004": "The message was blocked (the recipient or their carrier blocks this sender).",
    "30005": "The number is unknown to its carrier (it may no longer exist).",
    "30006": "A landline, or a carrier that cannot receive SMS.",
    "30007": "The carrier filtered the message as spam or a policy violation.",
    "30008": "The carrier reported an unknown error.",
    "30034": "US A2P 10DLC: the sender is not registered for this use case.",
    "63003": "WhatsApp: the number has no WhatsApp account.",
    "63016": "WhatsApp: outside the 24-hour window; only an approved template can be sent.",
    # WhatsApp Cloud API
    "130429": "WhatsApp: the Cloud API's throughput limit was reached.",
    "131021": "WhatsApp: the recipient is the sender's own number.",
    "131026": "WhatsApp: undeliverable (no WhatsApp account, an old app, or terms not accepted).",
    "131047": "WhatsApp: more than 24 hours since the customer last wrote; send a template.",
    "131048": "WhatsApp: held back by the spam rate limit (too many blocks or reports).",
    "131049": "WhatsApp: Meta chose not to deliver this marketing message.",
    "131051": "WhatsApp: a message type WhatsApp does not support.",
    "132001": "WhatsApp: the template does not exist in this language, or is not approved.",
    "470": "WhatsApp: more than 24 hours since the customer last wrote (legacy code).",
    # Conversa's own
    "opted_out": "The recipient opted out of this channel; nothing was sent.",
    "undelivered": "The provider could not deliver the message to the handset.",
    "timeout": "The provider did not answer in time.",
}


def meaning(code: str | None) -> str | None:
    """The meaning of a provider's error code, when it is a known one."""
    if not code:
        return None
    return MEANINGS.get(code.strip())
