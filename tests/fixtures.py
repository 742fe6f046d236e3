"""Small hand-made source files with known people, for pipeline tests.

People (truth):
- alice: Alice Smith, web (identify + order) + POS + survey, email case/plus variants.
- robert: Robert Jones as "Bob Jones" at the till, same phone.
- lee_john / lee_mary: a household sharing phone, address and a family email: two people.
- wang: 王伟 at the till and "Wei Wang" on the web with the same email.
Bad records: one ragged CSV row, one invalid JSON line, one bad amount, one bad NPS.
"""

from __future__ import annotations

import json
from pathlib import Path

TRUTH = {
    "m-alice-1": "alice",
    "m-alice-2": "alice",
    "t-alice-1": "alice",
    "s-alice-1": "alice",
    "m-bob-1": "robert",
    "t-bob-1": "robert",
    "t-bob-2": "robert",
    "t-lee-1": "lee_john",
    "t-lee-2": "lee_mary",
    "s-lee-1": "lee_mary",
    "m-lee-1": "lee_john",
    "t-wang-1": "wang",
    "m-wang-1": "wang",
}
EMAILS = ["alice.smith@example.com", "bob.jones@example.org", "lees@example.net", "wei.wang@example.cn"]
PHONES = ["+14155550101", "+14155550102", "+14155550199"]
NAMES = ["Alice", "Smith", "Jones", "王伟"]


def _calls() -> list[dict[str, object]]:
    return [
        {
            "type": "identify",
            "messageId": "m-alice-1",
            "timestamp": "2026-10-01T10:00:00Z",
            "userId": "u_1",
            "anonymousId": "a_1",
            "traits": {
                "email": "Alice.Smith@Example.com",
                "firstName": "Alice",
                "lastName": "Smith",
                "birthday": "1990-04-05",
                "address": {"city": "San Francisco", "state": "CA", "postalCode": "94103", "country": "US"},
            },
            "context": {
                "consent": {"categoryPreferences": {"marketing": True, "analytics": True, "advertising": False}}
            },
        },
        {
            "type": "track",
            "messageId": "m-alice-2",
            "timestamp": "2026-10-02T10:00:00Z",
            "userId": "u_1",
            "anonymousId": "a_1",
            "event": "Order Completed",
            "properties": {"order_id": "o1", "revenue": 120.5, "currency": "usd", "category": "tech"},
        },
        {
            "type": "page",
            "messageId": "m-anon-1",
            "timestamp": "2026-10-01T09:00:00Z",
            "anonymousId": "a_1",
            "name": "Home",
            "properties": {"path": "/"},
        },
        {
            "type": "identify",
            "messageId": "m-bob-1",
            "timestamp": "2026-09-01T10:00:00Z",
            "userId": "u_2",
            "traits": {"name": "Robert Jones", "phone": "(415) 555-0102", "email": "bob.jones@example.org"},
        },
        {
            "type": "identify",
            "messageId": "m-lee-1",
            "timestamp": "2026-09-03T10:00:00Z",
            "userId": "u_3",
            "traits": {
                "firstName": "John",
                "lastName": "Lee",
                "email": "lees@example.net",
                "phone": "+1 415 555 0199",
                "birthday": "1970-01-02",
            },
        },
        {
            "type": "identify",
            "messageId": "m-wang-1",
            "timestamp": "2026-09-05T10:00:00Z",
            "userId": "u_4",
            "traits": {
                "name": "Wei Wang",
                "email": "wei.wang@example.cn",
                "address": {"country": "CN", "city": "上海"},
            },
        },
        {"type": "track", "messageId": "m-bad-1", "timestamp": "2026-09-05T10:00:00Z", "event": "Order Completed"},
    ]


POS_HEADER = (
    "transaction_id,store_id,occurred_at,customer_name,customer_phone,customer_email,loyalty_id,line_items,"
    "amount,currency,city,state,postcode,country"
)
POS_ROWS = [
    't-alice-1,S1,2026-10-05T12:00:00Z,Alice Smith,,alice.smith+shop@example.com,L-1,"[{""sku"":""a"",""category"":""tech"",""quantity"":1,""unit_price"":80}]",80.00,USD,San Francisco,CA,94103,US',
    "t-bob-1,S1,2026-10-06T12:00:00Z,Bob Jones,415-555-0102,,,[],35.00,USD,,,,US",
    "t-bob-2,S2,2026-10-07T12:00:00Z,Bob Jones,415-555-0102,,,[],45.00,USD,,,,US",
    "t-lee-1,S1,2026-10-08T12:00:00Z,John Lee,+14155550199,lees@example.net,,[],10.00,USD,Oakland,CA,94601,US",
    "t-lee-2,S1,2026-10-09T12:00:00Z,Mary Lee,+14155550199,lees@example.net,,[],20.00,USD,Oakland,CA,94601,US",
    "t-wang-1,S9,2026-10-10T12:00:00Z,王伟,,wei.wang@example.cn,,[],99.00,CNY,上海,上海,200000,CN",
    "t-bad-amount,S1,2026-10-10T12:00:00Z,,,,,[],lots,USD,,,,US",
    "t-ragged,S1,2026-10-10T12:00:00Z",
]
SURVEY_HEADER = (
    "response_id,submitted_at,name,email,phone,country,city,postcode,birth_date,nps,csat,interests,feedback,"
    "marketing_opt_in"
)
SURVEY_ROWS = [
    "s-alice-1,2026-10-11T12:00:00Z,alice smith,ALICE.SMITH@example.com,,US,San Francisco,94103,04/05/1990,10,5,tech;outdoor,Love it great service,yes",
    "s-lee-1,2026-10-12T12:00:00Z,Mary Lee,,+14155550199,US,Oakland,94601,1972-07-08,3,2,home,slow and rude,no",
    "s-bad-nps,2026-10-12T12:00:00Z,Zed,,,US,,,,eleven,,,,",
]


def write_fixture_files(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    web = directory / "web.jsonl"
    lines = [json.dumps(c) for c in _calls()]
    lines.insert(3, "{not json")
    web.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pos = directory / "pos.csv"
    pos.write_text("\n".join([POS_HEADER, *POS_ROWS]) + "\n", encoding="utf-8")
    survey = directory / "survey.csv"
    survey.write_text("\n".join([SURVEY_HEADER, *SURVEY_ROWS]) + "\n", encoding="utf-8")
    return {"website": web, "pos": pos, "survey": survey}
