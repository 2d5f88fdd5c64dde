"""Vonage's signed webhooks, checked against the official SDK's signer (``vonage`` on PyPI)
as an independent oracle, and the parsing of delivery receipts and inbound SMS."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import urlencode
from uuid import uuid4

import pytest
from vonage_http_client.auth import Auth

from conversa.adapters.providers.vonage.webhook import (
    parse_vonage_webhook,
    verify_vonage_signature,
    vonage_signature,
    webhook_params,
)
from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.domain.status import Status

SECRET = "vonage-signature-secret-for-tests"
NOW = 1_780_000_000


def receipt(**extra: str) -> dict[str, str]:
    return {
        "msisdn": "447700900000",
        "to": "AcmeInc",
        "network-code": "23410",
        "messageId": "0A0000001234567B",
        "price": "0.03330000",
        "status": "delivered",
        "scts": "2001011400",
        "err-code": "0",
        "api-key": "abcd1234",
        "client-ref": str(uuid4()),
        "message-timestamp": "2026-12-06 08:00:00",
        "timestamp": str(NOW),
        "nonce": "ec11dd3e-1e7f-4db5-9467-82b02cd223b9",
        **extra,
    }


def sdk_sign(params: dict[str, str], method: str) -> str:
    """The SDK's signature; it has no ``md5hash`` mode, so that one is MD5 of the joined
    string followed by the secret, as Vonage documents it."""
    if method == "md5hash":
        joined = "".join(
            f"&{k}={params[k].replace('&', '_').replace('=', '_')}" for k in sorted(params)
        )
        return hashlib.md5((joined + SECRET).encode()).hexdigest()
    auth = Auth(api_key="abcd1234", signature_secret=SECRET, signature_method=method)
    return str(auth.sign_params(dict(params)))


@pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
def test_signatures_match_the_official_sdk_for_every_method(method: str) -> None:
    params = receipt(text="a=b&c=d: & and = are replaced")
    signature = sdk_sign(params, method)
    assert vonage_signature(params, SECRET, method) == signature
    # Vonage sends the digest in upper case for the HMAC methods: both are taken.
    for sig in (signature, signature.upper()):
        verify_vonage_signature({**params, "sig": sig}, secret=SECRET, method=method, now=NOW + 10)


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
def test_forged_stale_and_unsigned_webhooks_are_refused(method: str) -> None:
    params = receipt()
    good = {**params, "sig": sdk_sign(params, method)}
    forged = {**good, "status": "failed"}  # changed after signing
    wrong_key = {**params, "sig": vonage_signature(params, "another-secret", method)}
    stale_params = receipt(timestamp=str(NOW - 301))
    stale = {**stale_params, "sig": sdk_sign(stale_params, method)}
    future_params = receipt(timestamp=str(NOW + 301))
    future = {**future_params, "sig": sdk_sign(future_params, method)}
    cases = {
        "forged": (forged, SECRET, method),
        "wrong key": (wrong_key, SECRET, method),
        "stale": (stale, SECRET, method),
        "from the future": (future, SECRET, method),
        "no sig": (params, SECRET, method),
        "no timestamp": ({k: v for k, v in good.items() if k != "timestamp"}, SECRET, method),
        "no secret configured": (good, None, method),
        "another method": (good, SECRET, "sha512"),
    }
    for case, (given, secret, used) in cases.items():
        with pytest.raises(SignatureError):
            verify_vonage_signature(given, secret=secret, method=used, now=NOW)
        assert case
    verify_vonage_signature(good, secret=SECRET, method=method, now=NOW + 299)


def test_a_get_signed_with_our_own_query_parameter_is_taken_too() -> None:
    message_id = str(uuid4())
    params = receipt()
    signed = sdk_sign({**params, "message_id": message_id}, "sha256")
    query = [*params.items(), ("sig", signed), ("message_id", message_id)]
    got = webhook_params("GET", "", b"", query)
    assert "message_id" not in got
    verify_vonage_signature(got, secret=SECRET, method="sha256", now=NOW, query=dict(query))


def test_json_and_form_bodies_give_the_same_parameters() -> None:
    params = receipt()
    as_json = webhook_params("POST", "application/json", json.dumps(params).encode(), [])
    as_form = webhook_params(
        "POST", "application/x-www-form-urlencoded", urlencode(params).encode(), []
    )
    assert as_json == as_form == params
    for bad in (b"[1]", b"{", b'{"a": {"b": 1}}'):
        with pytest.raises(MalformedWebhook):
            webhook_params("POST", "application/json", bad, [])


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("accepted", Status.SENT),
        ("buffered", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("expired", Status.UNDELIVERED),
        ("failed", Status.UNDELIVERED),
        ("rejected", Status.FAILED),
    ],
)
def test_receipt_statuses_map_onto_the_lattice(word: str, status: Status) -> None:
    params = receipt(status=word, **({"err-code": "2"} if word != "delivered" else {}))
    hook = parse_vonage_webhook(params, None)
    assert hook.report is not None
    report = hook.report
    assert report.status is status
    assert str(report.message_id) == params["client-ref"]
    assert report.provider_message_id == report.part_id == "0A0000001234567B"
    if status.is_final:
        assert report.error_code == "vonage_dlr_2"
        assert report.error_message == "Absent subscriber (temporary)"
    else:
        assert report.error_code is None


def test_unknown_records_nothing_and_an_inbound_sms_is_acknowledged() -> None:
    assert parse_vonage_webhook(receipt(status="unknown"), None).report is None
    inbound = {
        "msisdn": "447700900001",
        "to": "447700900000",
        "messageId": "0A0000000123ABCD1",
        "text": "Hello world",
        "type": "text",
        "keyword": "HELLO",
        "api-key": "abcd1234",
        "message-timestamp": "2026-12-06 08:00:00",
    }
    hook = parse_vonage_webhook(inbound, None)
    assert hook.inbound and hook.report is None
    with pytest.raises(MalformedWebhook):
        parse_vonage_webhook({"foo": "bar"}, None)
    with pytest.raises(MalformedWebhook):
        parse_vonage_webhook({"status": "delivered"}, None)


def test_a_receipt_without_client_ref_is_matched_by_the_callback_url_or_message_id() -> None:
    params = {k: v for k, v in receipt().items() if k != "client-ref"}
    ours = str(uuid4())
    report = parse_vonage_webhook(params, ours).report
    assert report is not None and str(report.message_id) == ours
    report = parse_vonage_webhook(params, None).report
    assert report is not None and report.message_id is None
    assert report.provider_message_id == "0A0000001234567B"


def test_the_real_clock_is_what_a_route_would_pass() -> None:
    params = receipt(timestamp=str(int(time.time())))
    verify_vonage_signature(
        {**params, "sig": sdk_sign(params, "md5hash")},
        secret=SECRET,
        method="md5hash",
        now=time.time(),
    )
