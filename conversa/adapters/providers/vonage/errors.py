"""Vonage's error codes: those of the SMS API's answer (``messages[].status``) and those of a
delivery receipt (``err-code``), with what each means for a retry.

Send statuses come from the spec's ``x-errors`` (``shared/specs/vonage_sms_v1.0.10.yml``):
1 throttled, 5 internal error and 10 too many binds are worth retrying later; every other
non-zero status is permanent. Some permanent ones are about the recipient (6 unrecognised
number, 7 barred, 29 not on the demo whitelist, 33 deactivated): another provider would fare
no better. The rest are about our account or route (4 credentials, 8 account barred, 9 no
credit, 11 not enabled, 15 sender) and another provider may well succeed.
"""

from __future__ import annotations

from typing import Final

#: Send statuses worth retrying: throttled, internal error, too many binds.
TRANSIENT_STATUSES: Final = frozenset({1, 5, 10})

#: Send statuses about the recipient or the content, not about Vonage or our account.
RECIPIENT_STATUSES: Final = frozenset({6, 7, 29, 33})
#: Send statuses about our account or route: another provider may succeed.
ACCOUNT_STATUSES: Final = frozenset({4, 8, 9, 11, 15})

SEND_ERRORS: Final = {
    1: "Throttled",
    2: "Missing parameters",
    3: "Invalid parameters",
    4: "Invalid credentials",
    5: "Internal error",
    6: "Invalid message (e.g. an unrecognised number prefix)",
    7: "Number barred",
    8: "Partner account barred",
    9: "Partner quota violation (insufficient credit)",
    10: "Too many existing binds",
    11: "Account not enabled for HTTP",
    12: "Message too long",
    14: "Invalid signature",
    15: "Invalid sender address",
    22: "Invalid network code",
    23: "Invalid callback URL",
    29: "Non-whitelisted destination (account in demo mode)",
    32: "Signature and API secret disallowed",
    33: "Number de-activated",
}

#: Delivery-receipt ``err-code`` values (Vonage's delivery-receipt documentation).
DLR_ERRORS: Final = {
    "1": "Unknown",
    "2": "Absent subscriber (temporary)",
    "3": "Absent subscriber (permanent)",
    "4": "Call barred by user",
    "5": "Portability error",
    "6": "Anti-spam rejection",
    "7": "Handset busy",
    "8": "Network error",
    "9": "Illegal number",
    "10": "Illegal message",
    "11": "Unroutable",
    "12": "Destination unreachable",
    "13": "Subscriber age restriction",
    "14": "Number blocked by carrier",
    "15": "Pre-paid insufficient funds",
    "16": "Gateway quota exceeded",
    "50": "Entity filter",
    "51": "Header filter",
    "52": "Content filter",
    "53": "Consent filter",
    "54": "Regulation error",
    "99": "General error",
}


def send_error_text(status: int) -> str:
    return SEND_ERRORS.get(status, f"Vonage status {status}")


def dlr_error_text(err_code: str) -> str:
    return DLR_ERRORS.get(err_code, f"Vonage delivery error {err_code}")
