"""``/conversa/recipients/{number}`` on both stores: the number in any spelling, a change
through PUT recorded with source ``api`` and the token's name, an idempotent repeat, bad
input refused with the field and nothing stored."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from tests.integration.adapters.http.conftest import Api

NUMBER = "+15551230001"


def put(api: Api, number: str, body: object) -> httpx.Response:
    return api.request(
        "PUT", f"/conversa/recipients/{quote(number)}/consent", json=body, headers=api.auth
    )


def test_an_unknown_number_is_unknown_everywhere_with_no_history(api: Api) -> None:
    answer = api.get(f"/conversa/recipients/{quote(NUMBER)}", headers=api.auth)
    assert answer.status_code == 200
    assert answer.json() == {
        "number": NUMBER,
        "consent": {
            "sms": {"all": "unknown", "marketing": "unknown"},
            "whatsapp": {"all": "unknown", "marketing": "unknown"},
        },
        "history": [],
    }


def test_a_change_through_the_api_is_recorded_with_the_token_name_once(api: Api) -> None:
    spelled = "001 555 123 0001"  # the same number, written another way
    answer = put(api, spelled, {"channel": "sms", "status": "opted_out"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["number"] == NUMBER
    assert body["consent"]["sms"] == {"all": "opted_out", "marketing": "unknown"}
    assert body["consent"]["whatsapp"]["all"] == "unknown"
    [item] = body["history"]
    assert item["type"] == "opted_out"
    assert (item["channel"], item["scope"], item["source"]) == ("sms", "all", "api")
    assert item["by"].startswith("in-process-")
    assert item["occurred_at"].endswith("Z")

    again = put(api, NUMBER, {"channel": "sms", "scope": "all", "status": "opted_out"})
    assert len(again.json()["history"]) == 1  # already true: nothing recorded

    marketing = put(api, NUMBER, {"channel": "all", "scope": "marketing", "status": "opted_out"})
    assert marketing.json()["consent"]["whatsapp"] == {"all": "unknown", "marketing": "opted_out"}
    back = put(api, NUMBER, {"channel": "sms", "status": "opted_in"})
    history = back.json()["history"]
    assert [h["type"] for h in history] == ["opted_out", "opted_out", "opted_in"]
    assert back.json()["consent"]["sms"] == {"all": "opted_in", "marketing": "opted_in"}

    shown = api.get(f"/conversa/recipients/{NUMBER}", headers=api.auth)
    assert shown.json() == back.json()


def test_bad_input_is_refused_with_its_field_and_records_nothing(api: Api) -> None:
    cases = [
        ("not-a-number", {"channel": "sms", "status": "opted_out"}, "number"),
        (NUMBER, {"channel": "fax", "status": "opted_out"}, "channel"),
        (NUMBER, {"channel": "sms", "status": "maybe"}, "status"),
        (NUMBER, {"channel": "sms", "scope": "promos", "status": "opted_out"}, "scope"),
        (NUMBER, {"channel": "sms", "status": "opted_out", "extra": 1}, "extra"),
        (NUMBER, {"status": "opted_out"}, "channel"),
    ]
    for number, body, field in cases:
        answer = put(api, number, body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.json()["error"]["fields"], answer.json()
    assert api.get("/conversa/recipients/not-a-number", headers=api.auth).status_code == 422
    shown = api.get(f"/conversa/recipients/{NUMBER}", headers=api.auth)
    assert shown.json()["history"] == []


def test_the_recipients_endpoints_need_a_token(api: Api) -> None:
    assert api.get(f"/conversa/recipients/{NUMBER}").status_code == 401
    answer = api.request(
        "PUT",
        f"/conversa/recipients/{NUMBER}/consent",
        json={"channel": "sms", "status": "opted_out"},
    )
    assert answer.status_code == 401
