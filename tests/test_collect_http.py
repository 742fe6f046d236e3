"""The collection endpoint over real HTTP, driven by the official Segment client.

Why: "existing Segment clients work unchanged" is only true if the real
``segment-analytics-python`` library, pointed at cdp's host, gets its calls
stored. The app runs under uvicorn on 127.0.0.1 (a free port, a background
thread, stopped at the end); edge cases the client refuses to send (oversize
calls, wrong types, ``Sec-GPC``) go through httpx directly.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import segment.analytics as analytics
import uvicorn
from segment.analytics import request as segment_request
from segment.analytics.client import Client
from sqlalchemy import text

from cdp.access import CustomerStore
from cdp.access.context import AccessContext, identity_context
from cdp.api import create_app
from cdp.settings import Settings

WRITE_KEY = "test-key"
OPS = AccessContext("t", "data_engineer", "operations")


@pytest.fixture
def server(settings: Settings, store: CustomerStore) -> Iterator[str]:
    app = create_app(settings.with_overrides(write_keys=(WRITE_KEY,)), store=store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        segment_request._session.close()  # the client's module-level keep-alive pool


@pytest.fixture
def segment(server: str) -> Iterator[Any]:
    """The module-level Segment API, configured the documented way."""
    saved = (analytics.write_key, analytics.host, analytics.sync_mode, analytics.default_client)
    analytics.write_key = WRITE_KEY
    analytics.host = server
    analytics.sync_mode = True
    analytics.default_client = None
    yield analytics
    analytics.write_key, analytics.host, analytics.sync_mode, analytics.default_client = saved


def auth(key: str = WRITE_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def counts(store: CustomerStore) -> dict[str, int]:
    return store.counts(OPS)


def consents(store: CustomerStore) -> list[tuple[str, str, str]]:
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT purpose, status, source FROM consents ORDER BY id"))
        return [(r[0], r[1], r[2]) for r in rows]


def quarantine(store: CustomerStore) -> list[dict[str, Any]]:
    return store.quarantine_entries(OPS, source="website")


def test_official_client_calls_are_stored(segment: Any, store: CustomerStore) -> None:
    segment.identify("u-1", {"email": "Ann.Lee@Example.com", "firstName": "Ann", "lastName": "Lee"})
    segment.track("u-1", "Order Completed", {"revenue": 42.5, "currency": "eur", "order_id": "o-1"})
    segment.page("u-1", "Docs", "Home", {"path": "/"})
    segment.alias("anon-9", "u-1")
    segment.screen("u-1", "App", "Settings")
    found = counts(store)
    assert found["records:website"] == 5
    assert found["events"] == 5
    assert found["quarantine"] == 0
    features = [f for f in store.identity_features(identity_context()) if f["source"] == "website"]
    assert len(features) == 5
    identified = [f for f in features if f.get("email")]
    assert len(identified) == 1
    assert identified[0]["email"] == "ann.lee@example.com"  # normalised, decrypted in memory for the resolver
    assert identified[0]["given_name"] == "Ann"
    assert {f["user_id"] for f in features} == {"u-1"}


def test_client_batch_mode_flushes_many_calls_in_one_request(server: str, store: CustomerStore) -> None:
    client = Client(WRITE_KEY, host=server, upload_size=100, upload_interval=0.05, max_retries=0, sync_mode=False)
    try:
        for n in range(150):
            client.track(f"user-{n % 7}", "Product Viewed", {"sku": f"sku-{n}"}, message_id=f"batch-{n}")
        client.flush()
    finally:
        client.join()
    assert counts(store)["records:website"] == 150


def test_resending_a_message_id_is_a_no_op(segment: Any, store: CustomerStore) -> None:
    segment.track("u-2", "Signed Up", {}, message_id="fixed-id-1")
    segment.track("u-2", "Signed Up", {}, message_id="fixed-id-1")
    assert counts(store)["records:website"] == 1
    call = {"type": "track", "userId": "u-2", "event": "Signed Up", "messageId": "fixed-id-1"}
    response = httpx.post(f"{segment.host}/v1/batch", json={"batch": [call, call]}, headers=auth())
    assert response.status_code == 200
    assert response.json()["accepted"] == 0
    assert response.json()["duplicates"] == 2
    assert counts(store)["records:website"] == 1


def test_wrong_write_key_is_401(server: str, store: CustomerStore) -> None:
    client = Client("wrong-key", host=server, sync_mode=True)
    with pytest.raises(segment_request.APIError) as raised:
        client.track("u-3", "Signed Up")
    assert raised.value.status == 401
    assert "write key" in raised.value.message
    for headers in (auth("nope"), {}, {"Authorization": "Basic !!!"}):
        response = httpx.post(f"{server}/v1/track", json={"userId": "u", "event": "e"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert counts(store).get("records:website", 0) == 0


def test_write_key_in_the_body_is_accepted(server: str, store: CustomerStore) -> None:
    body = {"writeKey": WRITE_KEY, "batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "wk-1"}]}
    assert httpx.post(f"{server}/v1/batch", json=body).status_code == 200
    assert counts(store)["records:website"] == 1


def test_oversize_call_and_batch_are_400_with_the_reason(server: str, store: CustomerStore) -> None:
    big = {"userId": "u-4", "event": "Big", "properties": {"blob": "x" * (33 * 1024)}}
    response = httpx.post(f"{server}/v1/track", json=big, headers=auth())
    assert response.status_code == 400
    assert "32 KB limit" in response.json()["message"]
    calls = [
        {"type": "track", "userId": "u-4", "event": "E", "messageId": f"m-{i}", "properties": {"pad": "y" * 10_000}}
        for i in range(60)
    ]
    response = httpx.post(f"{server}/v1/batch", json={"batch": calls}, headers=auth())
    assert response.status_code == 400
    assert "500 KB limit" in response.json()["message"]
    # The limit holds for what a gzip body inflates to, not what it weighs on the wire.
    packed = gzip.compress(json.dumps({"batch": calls}).encode())
    assert len(packed) < 500 * 1024
    response = httpx.post(
        f"{server}/v1/batch",
        content=packed,
        headers={**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert "decompressed" in response.json()["message"]
    assert counts(store).get("records:website", 0) == 0


def test_oversize_call_inside_a_batch_is_quarantined_alone(server: str, store: CustomerStore) -> None:
    calls = [
        {"type": "track", "userId": "u-5", "event": "Small", "messageId": "small-1"},
        {"type": "track", "userId": "u-5", "event": "Big", "messageId": "big-1", "properties": {"p": "z" * 40_000}},
    ]
    response = httpx.post(f"{server}/v1/batch", json={"batch": calls}, headers=auth())
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"][0]["messageId"] == "big-1"
    (entry,) = quarantine(store)
    assert entry["position"] == "http:big-1"
    assert "32 KB limit" in entry["reason"]


def test_gzip_batches_are_accepted(server: str, store: CustomerStore) -> None:
    client = Client(WRITE_KEY, host=server, sync_mode=True, gzip=True)
    client.identify("u-6", {"email": "gz@example.org"})
    assert counts(store)["records:website"] == 1


def test_sec_gpc_records_an_advertising_opt_out(server: str, store: CustomerStore) -> None:
    call = {"userId": "u-7", "traits": {"email": "gpc@example.org"}, "messageId": "gpc-1"}
    response = httpx.post(f"{server}/v1/identify", json=call, headers={**auth(), "Sec-GPC": "1"})
    assert response.status_code == 200
    assert ("advertising", "denied", "website:sec-gpc") in consents(store)
    response = httpx.post(
        f"{server}/v1/identify", json={**call, "messageId": "no-gpc"}, headers=auth()
    )  # without the header: no opt-out recorded
    assert response.status_code == 200
    assert [c for c in consents(store) if c[2] == "website:sec-gpc"] == [("advertising", "denied", "website:sec-gpc")]


def test_malformed_call_is_quarantined_naming_the_field(segment: Any, store: CustomerStore) -> None:
    with pytest.raises(segment_request.APIError) as raised:
        segment.track("u-8", "Order Completed", {"revenue": "lots"}, message_id="bad-revenue")
    assert raised.value.status == 400
    assert "properties.revenue" in raised.value.message
    (entry,) = quarantine(store)
    assert entry["field"] == "properties.revenue"
    assert entry["position"] == "http:bad-revenue"
    assert "number" in entry["reason"]
    _, raw = store.quarantine_payload(OPS, entry["id"])
    assert json.loads(raw)["messageId"] == "bad-revenue"  # kept (encrypted) for replay


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"type": "track", "userId": "u", "event": ["not", "text"]}, "event"),
        ({"type": "track", "userId": "u"}, "event"),
        ({"type": "identify", "userId": "u", "traits": "a string"}, "traits"),
        ({"type": "identify", "userId": "u", "traits": {"email": "not-an-email"}}, "email"),
        ({"type": "page", "userId": "u", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "track", "event": "E"}, "userId"),
        ({"type": "teleport", "userId": "u"}, "type"),
        ({"type": ["track"], "userId": "u"}, "type"),
        ({"type": "track", "userId": "u", "event": "E", "context": "nope"}, "context"),
        (
            {"type": "identify", "userId": "u", "context": {"consent": {"categoryPreferences": []}}},
            "categoryPreferences",
        ),
    ],
)
def test_malformed_calls_in_a_batch_are_quarantined(
    server: str, store: CustomerStore, call: dict[str, Any], field: str
) -> None:
    good = {"type": "track", "userId": "u", "event": "Fine", "messageId": "good-" + uuid.uuid4().hex}
    bad = {**call, "messageId": "bad-" + uuid.uuid4().hex}
    response = httpx.post(f"{server}/v1/batch", json={"batch": [good, bad], "context": {"ip": "1"}}, headers=auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert [r["messageId"] for r in body["rejected"]] == [bad["messageId"]]
    assert field in body["rejected"][0]["field"]
    (entry,) = quarantine(store)
    assert field in entry["field"]
    assert counts(store)["records:website"] == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"batch": "calls"}', "'batch' must be a list"),
        (b'{"batch": [1, 2]}', "'batch' must be a list"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_unreadable_bodies_are_400(server: str, store: CustomerStore, content: bytes, reason: str) -> None:
    response = httpx.post(f"{server}/v1/batch", content=content, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert response.json()["code"] == "InputError"


def test_concurrent_clients_share_transactions_without_losing_calls(server: str, store: CustomerStore) -> None:
    """Group commit: 8 clients at once, every call stored exactly once."""
    errors: list[str] = []

    def send(worker: int) -> None:
        with httpx.Client(base_url=server, headers=auth()) as client:
            for round_ in range(5):
                calls = [
                    {"type": "track", "userId": f"w{worker}", "event": "E", "messageId": f"c-{worker}-{round_}-{i}"}
                    for i in range(20)
                ]
                response = client.post("/v1/batch", json={"batch": calls})
                if response.status_code != 200 or response.json()["accepted"] != 20:
                    errors.append(response.text)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counts(store)["records:website"] == 8 * 5 * 20


def test_large_batches_are_parsed_in_a_parser_process_and_stored_alike(
    settings: Settings, store: CustomerStore
) -> None:
    """A /v1/batch body of 4 KB or more is parsed in a parser process: what it stores (records, blind
    indexes, events, consents, quarantine) is what the in-process path stores for the same calls."""
    from litestar.testing import TestClient

    def calls(prefix: str) -> list[dict[str, Any]]:
        made: list[dict[str, Any]] = []
        for i in range(40):
            base = {"messageId": f"{prefix}-{i}", "userId": f"{prefix}-u{i % 7}", "timestamp": "2026-10-01T10:00:00Z"}
            if i % 4 == 0:
                traits = {"email": f"{prefix}{i % 7}@example.org", "firstName": "Pat", "phone": "+44 20 7946 0018"}
                made.append(base | {"type": "identify", "traits": traits, "context": {"ip": "10.0.0.1"}})
            else:
                made.append(base | {"type": "track", "event": "Viewed", "properties": {"sku": f"s{i}", "price": 9.5}})
        made.append({"type": "track", "messageId": f"{prefix}-bad", "event": ["not", "text"], "userId": "x"})
        return made

    app = create_app(settings.with_overrides(write_keys=(WRITE_KEY,)), store=store)
    with TestClient(app=app) as client:
        big = json.dumps({"batch": calls("p"), "context": {"library": {"name": "t"}}})
        assert len(big) >= 4096
        response = client.post("/v1/batch", content=big, headers={**auth(), "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 40
        assert [r["messageId"] for r in response.json()["rejected"]] == ["p-bad"]
        assert app.state["batch_parser"] is not None  # the parser process did it
        again = client.post("/v1/batch", content=big, headers={**auth(), "Content-Type": "application/json"})
        assert again.json()["duplicates"] == 40
        small = calls("q")
        for start in range(0, len(small), 2):  # bodies under 4 KB: parsed in this process
            body = {"batch": small[start : start + 2], "context": {"library": {"name": "t"}}}
            assert client.post("/v1/batch", json=body, headers=auth()).status_code in (200, 400)
    assert app.state["batch_parser"] is None  # stopped with the app

    def stored(sql: str) -> dict[str, list[tuple[Any, ...]]]:
        with store.engine.connect() as connection:
            rows = connection.execute(text(sql)).all()
        out: dict[str, list[tuple[Any, ...]]] = {"p": [], "q": []}
        for prefix, *rest in rows:
            out[prefix[0]].append(tuple(rest))
        return {k: sorted(v, key=repr) for k, v in out.items()}

    for sql in (
        "SELECT source_record_id, substr(source_record_id, 2), kind, occurred_at, country, email_enc IS NULL,"
        " phone_enc IS NULL, given_name_enc IS NULL, user_id_enc IS NULL FROM records",
        "SELECT r.source_record_id, substr(r.source_record_id, 2), b.kind FROM blind_indexes b"
        " JOIN records r ON r.id = b.record_id",
        "SELECT r.source_record_id, substr(r.source_record_id, 2), e.event_type, e.event_name, e.occurred_at,"
        " e.properties, e.anonymous_key IS NULL, e.user_key IS NULL FROM events e JOIN records r ON r.id = e.record_id",
        "SELECT r.source_record_id, substr(r.source_record_id, 2), c.purpose, c.status, c.source, c.evidence"
        " FROM consents c JOIN records r ON r.id = c.record_id",
        "SELECT substr(position, 6), substr(position, 7), field, replace(reason, 'q-bad', 'p-bad') FROM quarantine",
    ):
        found = stored(sql)
        assert found["p"] == found["q"], sql
    assert len(stored("SELECT source_record_id FROM records")["p"]) == 40
    # One person, one key: the parser's records of a person share the key of that person's first record.
    with store.engine.connect() as connection:
        keys = connection.execute(
            text("SELECT count(DISTINCT key_id) FROM records WHERE source_record_id LIKE 'p-%'")
        ).scalar()
    assert keys == 7
