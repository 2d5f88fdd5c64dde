"""Africa's Talking's per-recipient ``statusCode`` values, and what each means for a retry.

101 sent and 102 queued (and 100 processed) are accepted. 401-407 and 409 are permanent;
500-502 are worth retrying later. Of the permanent ones, 403 invalid number, 404 unsupported
number type, 406 blacklisted and 409 do-not-disturb are about the recipient; 401 risk hold,
402 sender id, 405 balance and 407 no route are about our account or route, where another
provider may succeed.
"""

from __future__ import annotations

from typing import Final

ACCEPTED_CODES: Final = frozenset({100, 101, 102})
TRANSIENT_CODES: Final = frozenset({500, 501, 502})
ACCOUNT_CODES: Final = frozenset({401, 402, 405, 407})

STATUS_CODES: Final = {
    100: "Processed",
    101: "Sent",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}
