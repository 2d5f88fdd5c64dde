"""Twilio status callbacks, pure parts: the URL Twilio signed, X-Twilio-Signature, the form,
and the callback on the status lattice.

Requests are signed with the official ``twilio`` package's RequestValidator, never with
Conversa's own signing code, so the two implementations check each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlencode
from uuid import UUID

import pytest
from twilio.request_validator import RequestValidator

from conversa.adapters.providers.twilio import status_callback_url
from conversa.adapters.providers.twilio_webhook import (
    ERROR_MEANINGS,
    MAX_FORM_FIELDS,
    parse_form,
    parse_twilio_callback,
    public_url,
    verify_twilio_signature,
)
from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.domain.status import Status

TOKEN = "twilio-auth-token-" + "7" * 14
BASE = "https://hooks.example.com"
PATH = "/conversa/webhooks/twilio"
MESSAGE_ID = UUID("00000000-0000-4000-8000-00000000000a")
QUERY = f"message_id={MESSAGE_ID}"
URL = f"{BASE}{PATH}?{QUERY}"
SID = "SM" + "0f" * 16
ACCOUNT = "AC" + "0123456789abcdef" * 2

#: What Twilio posts for an SMS that reached the handset (docs example fields, plus the
#: usual extras).
DELIVERED = [
    ("AccountSid", ACCOUNT),
    ("ApiVersion", "2010-04-01"),
    ("From", "+15557654321"),
    ("MessageSid", SID),
    ("MessageStatus", "delivered"),
    ("RawDlrDoneDate", "2511251304"),
    ("SmsSid", SID),
    ("SmsStatus", "delivered"),
    ("To", "+15551234567"),
]

#: The official test vector (twilio-python tests/unit/test_request_validator.py).
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_FORM = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
VECTOR_SIGNATURE_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="
VECTOR_DUPLICATES = [
    ("Sid", "CA123"),
    ("SidAccount", "AC123"),
    ("Digits", "5678"),
    ("Digits", "1234"),
    ("Digits", "1234"),
]
VECTOR_DUPLICATES_SIGNATURE = "IK+Dwps556ElfBT0I3Rgjkr1wJU="


class _MultiDict(dict[str, list[str]]):
    """Form pairs as the official validator reads multi-valued fields (``getlist``)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        return self[name]


def official(token: str, url: str, form: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature as the official twilio package computes it."""
    signature: str = RequestValidator(token).compute_signature(url, _MultiDict(form))
    return signature


def verify(
    url: str = URL,
    form: list[tuple[str, str]] | None = None,
    signature: str | None = None,
    token: str | None = TOKEN,
) -> None:
    form = DELIVERED if form is None else form
    verify_twilio_signature(auth_token=token, url=url, form=form, signature=signature)


# The URL Twilio signed


def test_public_url_is_the_status_callback_the_driver_gave_twilio() -> None:
    assert public_url(BASE, PATH, QUERY) == status_callback_url(BASE, str(MESSAGE_ID)) == URL


@pytest.mark.parametrize(
    ("base", "path", "query", "expected"),
    [
        (BASE, PATH, "", f"{BASE}{PATH}"),
        (BASE + "/", PATH, QUERY, URL),
        ("https://hooks.example.com:8443/prefix", PATH, "a=1", f"{BASE}:8443/prefix{PATH}?a=1"),
        ("http://127.0.0.1:8000", PATH, "a=1", f"http://127.0.0.1:8000{PATH}?a=1"),
        # The raw query, byte for byte: no decoding, no re-encoding, no reordering.
        (
            BASE,
            PATH,
            "b=2&a=%20x+y%2Bz&c=&d&%C3%A9=%e2%9c%93",
            f"{BASE}{PATH}?b=2&a=%20x+y%2Bz&c=&d&%C3%A9=%e2%9c%93",
        ),
    ],
)
def test_public_url(base: str, path: str, query: str, expected: str) -> None:
    assert public_url(base, path, query) == expected


def test_a_signature_over_the_raw_query_verifies() -> None:
    query = "tenant=a%20b+c&message_id=" + str(MESSAGE_ID)
    url = public_url(BASE, PATH, query)
    verify(url=url, signature=official(TOKEN, f"{BASE}{PATH}?{query}", DELIVERED))
    # The same query decoded then re-encoded is another URL, hence another signature.
    with pytest.raises(SignatureError):
        verify(
            url=public_url(BASE, PATH, "tenant=a+b+c&message_id=" + str(MESSAGE_ID)),
            signature=official(TOKEN, url, DELIVERED),
        )


# X-Twilio-Signature


def test_a_valid_signature_passes() -> None:
    verify(signature=official(TOKEN, URL, DELIVERED))


def test_the_official_test_vector_passes() -> None:
    assert official(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM) == VECTOR_SIGNATURE
    verify_twilio_signature(
        auth_token=VECTOR_TOKEN, url=VECTOR_URL, form=VECTOR_FORM, signature=VECTOR_SIGNATURE
    )


def test_the_official_port_vector_passes_for_the_url_without_port() -> None:
    assert (
        official(VECTOR_TOKEN, VECTOR_URL.replace(".com/", ".com:443/"), VECTOR_FORM)
        == VECTOR_SIGNATURE_443
    )
    verify_twilio_signature(
        auth_token=VECTOR_TOKEN, url=VECTOR_URL, form=VECTOR_FORM, signature=VECTOR_SIGNATURE_443
    )


def test_the_official_duplicate_values_vector_passes() -> None:
    assert official(VECTOR_TOKEN, VECTOR_URL, VECTOR_DUPLICATES) == VECTOR_DUPLICATES_SIGNATURE
    form = parse_form(urlencode(VECTOR_DUPLICATES).encode())
    assert form == VECTOR_DUPLICATES
    verify_twilio_signature(
        auth_token=VECTOR_TOKEN, url=VECTOR_URL, form=form, signature=VECTOR_DUPLICATES_SIGNATURE
    )


@pytest.mark.parametrize(
    ("signed_url", "public"),
    [
        (
            "https://hooks.example.com:443/conversa/webhooks/twilio?x=1",
            "https://hooks.example.com/conversa/webhooks/twilio?x=1",
        ),
        (
            "https://hooks.example.com/conversa/webhooks/twilio?x=1",
            "https://hooks.example.com:443/conversa/webhooks/twilio?x=1",
        ),
        (
            "http://hooks.example.com:80/conversa/webhooks/twilio",
            "http://hooks.example.com/conversa/webhooks/twilio",
        ),
        (
            "http://hooks.example.com/conversa/webhooks/twilio",
            "http://hooks.example.com:80/conversa/webhooks/twilio",
        ),
        ("https://hooks.example.com:8443/p", "https://hooks.example.com:8443/p"),
    ],
)
def test_the_default_port_may_be_there_or_not(signed_url: str, public: str) -> None:
    verify(url=public, signature=official(TOKEN, signed_url, DELIVERED))


@pytest.mark.parametrize(
    ("signed_url", "public"),
    [
        # Never the other scheme, nor the other scheme's default port.
        ("http://hooks.example.com/p", "https://hooks.example.com/p"),
        ("https://hooks.example.com/p", "http://hooks.example.com/p"),
        ("https://hooks.example.com:80/p", "https://hooks.example.com/p"),
        ("http://hooks.example.com:443/p", "http://hooks.example.com/p"),
        # A port that is not the default is part of the URL.
        ("https://hooks.example.com/p", "https://hooks.example.com:8443/p"),
        ("https://hooks.example.com:8443/p", "https://hooks.example.com/p"),
        # Another path or query.
        ("https://hooks.example.com/p?message_id=1", "https://hooks.example.com/p?message_id=2"),
        ("https://hooks.example.com/p?a=1", "https://hooks.example.com/p"),
        ("https://hooks.example.com/prefix/p", "https://hooks.example.com/p"),
    ],
)
def test_another_url_fails(signed_url: str, public: str) -> None:
    with pytest.raises(SignatureError):
        verify(url=public, signature=official(TOKEN, signed_url, DELIVERED))


@pytest.mark.parametrize("index", range(len(DELIVERED)))
def test_one_changed_byte_in_any_value_fails(index: int) -> None:
    signature = official(TOKEN, URL, DELIVERED)
    form = list(DELIVERED)
    name, value = form[index]
    form[index] = (name, value[:-1] + chr(ord(value[-1]) ^ 1))
    with pytest.raises(SignatureError, match="does not match"):
        verify(form=form, signature=signature)


def test_a_field_added_renamed_or_dropped_fails() -> None:
    signature = official(TOKEN, URL, DELIVERED)
    for form in (
        [*DELIVERED, ("ErrorCode", "30003")],
        [("messageSid" if n == "MessageSid" else n, v) for n, v in DELIVERED],
        DELIVERED[1:],
    ):
        with pytest.raises(SignatureError):
            verify(form=form, signature=signature)


def test_unknown_fields_are_signed_too() -> None:
    form = [*DELIVERED, ("BrandNewField", "surprise"), ("ZZZ", "")]
    verify(form=form, signature=official(TOKEN, URL, form))


def test_the_order_of_the_fields_does_not_matter() -> None:
    verify(form=DELIVERED[::-1], signature=official(TOKEN, URL, DELIVERED))


def test_a_wrong_token_fails() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(signature=official("another-token", URL, DELIVERED))


def test_a_signature_with_another_case_fails() -> None:
    signature = official(TOKEN, URL, DELIVERED)
    assert signature.swapcase() != signature
    with pytest.raises(SignatureError):
        verify(signature=signature.swapcase())


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_or_empty_header_fails(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing or empty"):
        verify(signature=header)


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_configured_fails_closed(token: str | None) -> None:
    # Even a request "signed" with an empty key is refused.
    with pytest.raises(SignatureError, match="no Twilio auth token"):
        verify(token=token, signature=official("", URL, DELIVERED))


@pytest.mark.parametrize("header", ["garbage", "é" * 28, "x" * 10_000, VECTOR_SIGNATURE])
def test_odd_headers_fail_cleanly(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(signature=header)


def test_surrounding_whitespace_in_the_header_is_ignored() -> None:
    verify(signature=f"  {official(TOKEN, URL, DELIVERED)} ")


def test_errors_never_carry_the_token_or_a_signature() -> None:
    expected = official(TOKEN, URL, DELIVERED)
    wrong = official(TOKEN, URL, [*DELIVERED, ("x", "y")])
    for signature, token in ((wrong, TOKEN), (None, TOKEN), (wrong, None)):
        with pytest.raises(SignatureError) as caught:
            verify(signature=signature, token=token)
        text = str(caught.value) + repr(caught.value)
        assert TOKEN not in text
        assert expected not in text
        assert wrong not in text


# The form: what Twilio encodes, parse_form decodes, and the signature still matches


@pytest.mark.parametrize(
    "pairs",
    [
        [("Body", "")],
        [("Body", ""), ("ErrorCode", ""), ("MessageSid", SID)],
        [("Body", "café ✓ 😀 Grüß Gott 王")],
        [("Body", "1+1=2 & 100% sure; a=b?c#d")],
        [("Body", "%20 is a space, %2B is a plus, + too")],
        [("Body", "line\nbreak\r\nand\ttab")],
        [("MediaUrl", "https://x.example/a?b=1&c=2"), ("MediaUrl", "https://x.example/0")],
        [("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234"), ("Digits", "")],
        [("Ünïcode-Name", "v"), ("a", "1"), ("A", "2"), ("_", "3")],
    ],
)
@pytest.mark.parametrize("space_as_plus", [True, False], ids=["+", "%20"])
def test_values_round_trip_through_the_form_and_verify(
    pairs: list[tuple[str, str]], space_as_plus: bool
) -> None:
    form = [*DELIVERED, *pairs]
    body = (urlencode(form) if space_as_plus else urlencode(form, quote_via=quote)).encode()
    parsed = parse_form(body)
    assert parsed == form
    verify(form=parsed, signature=official(TOKEN, URL, form))


def test_parse_form_keeps_order_duplicates_and_blanks() -> None:
    assert parse_form(b"b=2&a=&a=1&c&&d=%3D") == [
        ("b", "2"),
        ("a", ""),
        ("a", "1"),
        ("c", ""),
        ("d", "="),
    ]
    assert parse_form(b"") == []


@pytest.mark.parametrize(
    "body",
    [
        b"Body=\xff\xfe",  # not UTF-8
        "Body=café".encode("latin-1"),
        b"Body=%FF",  # a percent-escape that is not UTF-8
        b"Body=%C3",  # a truncated UTF-8 sequence
        b"%FF=x",
    ],
)
def test_a_body_that_is_not_utf8_form_data_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        parse_form(body)


def test_too_many_fields_is_malformed() -> None:
    assert len(parse_form(b"&".join([b"a=1"] * MAX_FORM_FIELDS))) == MAX_FORM_FIELDS
    with pytest.raises(MalformedWebhook, match="fields"):
        parse_form(b"&".join([b"a=1"] * (MAX_FORM_FIELDS + 1)))


# Parsing: the callback on the lattice


def callback(status: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        ("AccountSid", ACCOUNT),
        ("From", "+15557654321"),
        ("To", "+15551234567"),
        ("MessageSid", SID),
        ("MessageStatus", status),
        ("SmsSid", SID),
        ("SmsStatus", status),
        ("ApiVersion", "2010-04-01"),
        *extra,
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("accepted", Status.QUEUED),
        ("scheduled", Status.QUEUED),
        ("queued", Status.QUEUED),
        ("sending", Status.QUEUED),
        ("sent", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("partially_delivered", Status.DELIVERED),
        ("read", Status.READ),
        ("undelivered", Status.UNDELIVERED),
        ("failed", Status.FAILED),
        ("canceled", Status.FAILED),
    ],
)
def test_every_outbound_status_maps_onto_the_lattice(raw: str, expected: Status) -> None:
    report = parse_twilio_callback(callback(raw), str(MESSAGE_ID))
    assert report is not None
    assert report.status is expected
    assert report.raw_status == raw
    assert report.provider == "twilio"
    assert report.provider_message_id == SID
    assert report.message_id == MESSAGE_ID
    assert report.occurred_at is None
    if raw != "canceled":
        assert report.error_code is None
        assert report.error_message is None


@pytest.mark.parametrize("raw", ["receiving", "received", "bogus", "deleted", "QUEUED?"])
def test_inbound_and_unknown_statuses_are_not_reports(raw: str) -> None:
    assert parse_twilio_callback(callback(raw), str(MESSAGE_ID)) is None


def test_a_status_in_another_case_still_maps() -> None:
    report = parse_twilio_callback(callback("Delivered"), None)
    assert report is not None
    assert report.status is Status.DELIVERED
    assert report.raw_status == "Delivered"


def test_canceled_is_a_failure_coded_canceled() -> None:
    report = parse_twilio_callback(callback("canceled"), str(MESSAGE_ID))
    assert report is not None
    assert (report.status, report.error_code) == (Status.FAILED, "canceled")
    assert report.error_message


@pytest.mark.parametrize("code", sorted(ERROR_MEANINGS))
def test_common_error_codes_are_kept_with_their_meaning(code: str) -> None:
    report = parse_twilio_callback(callback("undelivered", ("ErrorCode", code)), None)
    assert report is not None
    assert report.error_code == code
    assert report.error_message == ERROR_MEANINGS[code]


def test_the_common_async_codes_all_have_a_meaning() -> None:
    assert set(ERROR_MEANINGS) >= {
        "30001",
        "30003",
        "30005",
        "30006",
        "30007",
        "30008",
        "30034",
        "63016",
        "63018",
        "63024",
    }
    assert ERROR_MEANINGS["30003"] == "Unreachable destination handset"


def test_another_error_code_is_named_by_number() -> None:
    report = parse_twilio_callback(callback("failed", ("ErrorCode", "30410")), None)
    assert report is not None
    assert (report.status, report.error_code) == (Status.FAILED, "30410")
    assert report.error_message == "Twilio error 30410"


def test_a_blank_error_code_is_no_error() -> None:
    report = parse_twilio_callback(callback("delivered", ("ErrorCode", "")), None)
    assert report is not None
    assert report.error_code is None
    assert report.error_message is None


def test_unknown_fields_are_ignored() -> None:
    form = callback(
        "sent",
        ("BrandNewField", "x"),
        ("RawDlrDoneDate", "2511251304"),
        ("MessagingServiceSid", "MG" + "1" * 32),
        ("", "nameless"),
    )
    assert parse_twilio_callback(form, str(MESSAGE_ID)) == parse_twilio_callback(
        callback("sent"), str(MESSAGE_ID)
    )


@pytest.mark.parametrize(
    "query",
    [
        None,
        "",
        "not-a-uuid",
        "12345",
        str(MESSAGE_ID) + "x",
        "00000000-0000-4000-8000-00000000000g",
    ],
)
def test_an_absent_or_invalid_message_id_falls_back_to_the_sid(query: str | None) -> None:
    report = parse_twilio_callback(callback("delivered"), query)
    assert report is not None
    assert report.message_id is None
    assert report.provider_message_id == SID


def test_the_legacy_fields_are_a_fallback() -> None:
    form = [("SmsSid", SID), ("SmsStatus", "sent"), ("MessageStatus", "")]
    report = parse_twilio_callback(form, None)
    assert report is not None
    assert (report.provider_message_id, report.status, report.raw_status) == (
        SID,
        Status.SENT,
        "sent",
    )
    # MessageStatus wins when both are there.
    both = [("MessageSid", SID), ("MessageStatus", "delivered"), ("SmsStatus", "sent")]
    report = parse_twilio_callback(both, None)
    assert report is not None
    assert report.status is Status.DELIVERED


def test_neither_sid_nor_status_is_malformed() -> None:
    for form in ([], [("AccountSid", ACCOUNT), ("To", "+15551234567")], [("MessageSid", "")]):
        with pytest.raises(MalformedWebhook):
            parse_twilio_callback(form, str(MESSAGE_ID))


def test_a_sid_without_a_status_is_not_a_report() -> None:
    assert parse_twilio_callback([("MessageSid", SID)], str(MESSAGE_ID)) is None


def test_a_status_without_a_sid_is_matched_by_our_id() -> None:
    report = parse_twilio_callback([("MessageStatus", "sent")], str(MESSAGE_ID))
    assert report is not None
    assert (report.message_id, report.provider_message_id) == (MESSAGE_ID, None)


def test_a_status_with_nothing_to_match_it_by_is_malformed() -> None:
    with pytest.raises(MalformedWebhook):
        parse_twilio_callback([("MessageStatus", "sent")], "not-a-uuid")


def test_a_whatsapp_read_receipt_via_twilio() -> None:
    """A real-looking WhatsApp callback: channel fields, EventType, whatsapp: addresses."""
    wa_sid = "SM" + "ab" * 16
    form = [
        ("ChannelPrefix", "whatsapp"),
        ("ApiVersion", "2010-04-01"),
        ("MessageStatus", "read"),
        ("SmsSid", wa_sid),
        ("SmsStatus", "read"),
        ("ChannelInstallSid", "XE" + "cd" * 16),
        ("To", "whatsapp:+5493515281234"),
        ("From", "whatsapp:+14155238886"),
        ("MessageSid", wa_sid),
        ("AccountSid", ACCOUNT),
        ("ChannelToAddress", "+54935152XXXX"),
        ("EventType", "READ"),
        ("StructuredMessage", "false"),
    ]
    body = urlencode(form).encode()
    parsed = parse_form(body)
    verify(form=parsed, signature=official(TOKEN, URL, form))
    report = parse_twilio_callback(parsed, str(MESSAGE_ID))
    assert report is not None
    assert (report.status, report.raw_status) == (Status.READ, "read")
    assert (report.provider_message_id, report.message_id) == (wa_sid, MESSAGE_ID)
    assert report.error_code is None


def test_a_whatsapp_failure_via_twilio_keeps_the_code() -> None:
    form = [
        ("ChannelPrefix", "whatsapp"),
        ("MessageStatus", "undelivered"),
        ("MessageSid", SID),
        ("ErrorCode", "63016"),
        ("ChannelStatusMessage", "Failed to send freeform message outside the window"),
        ("To", "whatsapp:+5493515281234"),
        ("From", "whatsapp:+14155238886"),
    ]
    report = parse_twilio_callback(form, str(MESSAGE_ID))
    assert report is not None
    assert (report.status, report.error_code) == (Status.UNDELIVERED, "63016")
    assert report.error_message == ERROR_MEANINGS["63016"]
