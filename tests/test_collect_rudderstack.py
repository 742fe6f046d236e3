"""The collection endpoint driven by the official RudderStack Python client.

Why: issue #3 promises that existing Segment *and RudderStack* client libraries
pointed at cdp work unchanged. RudderStack's ``rudder-sdk-python`` differs from
Segment's in what reaches the server: every call, even in sync mode, goes to
``/v1/batch``, gzip-compressed by default, with the write key as the basic-auth
user and a ``sentAt`` on the batch. This drives the real library against the
same uvicorn server as ``test_collect_http.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rudderstack.analytics import request as rudder_request  # type: ignore[import-untyped]  # the SDK ships no types
from rudderstack.analytics.client import Client  # type: ignore[import-untyped]  # (no py.typed, no stubs package)
from test_collect_http import OPS, WRITE_KEY, counts, server

from cdp.access import CustomerStore
from cdp.access.context import identity_context

__all__ = ["server"]  # the fixture, imported so pytest finds it here


@pytest.fixture
def rudder(server: str) -> Iterator[Client]:
    """A client configured the documented way (data plane URL and write key), gzip on (its default)."""
    client = Client(WRITE_KEY, host=server, sync_mode=True, max_retries=0, gzip=True)
    yield client
    rudder_request._session.close()  # the library's module-level keep-alive pool


def test_rudderstack_client_calls_are_stored(rudder: Client, store: CustomerStore) -> None:
    rudder.identify("r-1", {"email": "Bo.Chen@Example.com", "firstName": "Bo", "phone": "+44 20 7946 0958"})
    rudder.track("r-1", "Order Completed", {"revenue": 19.9, "currency": "gbp", "order_id": "r-o-1"})
    rudder.page("r-1", "Shop", "Basket", {"path": "/basket"})
    rudder.alias("anon-r", "r-1")
    found = counts(store)
    assert found["records:website"] == 4
    assert found["events"] == 4
    assert found["quarantine"] == 0
    features = [f for f in store.identity_features(identity_context()) if f["source"] == "website"]
    identified = [f for f in features if f.get("email")]
    assert [f["email"] for f in identified] == ["bo.chen@example.com"]
    assert identified[0]["phone"] == "+442079460958"  # normalised to E.164
    assert {f["user_id"] for f in features} == {"r-1"}


def test_rudderstack_resent_message_id_is_a_no_op(rudder: Client, store: CustomerStore) -> None:
    rudder.track("r-2", "Signed Up", {}, message_id="rudder-fixed-1")
    rudder.track("r-2", "Signed Up", {}, message_id="rudder-fixed-1")
    assert counts(store)["records:website"] == 1


def test_rudderstack_uncompressed_and_queued_batches(server: str, store: CustomerStore) -> None:
    client = Client(WRITE_KEY, host=server, gzip=False, upload_size=50, upload_interval=0.05, max_retries=0)
    try:
        for n in range(120):
            client.track(f"r-user-{n % 5}", "Product Viewed", {"sku": f"sku-{n}"}, message_id=f"rudder-{n}")
        client.flush()
    finally:
        client.join()
        rudder_request._session.close()
    assert counts(store)["records:website"] == 120


def test_rudderstack_wrong_write_key_is_refused(server: str, store: CustomerStore) -> None:
    client = Client("not-the-key", host=server, sync_mode=True, max_retries=0)
    with pytest.raises(rudder_request.APIError) as raised:
        client.track("r-3", "Signed Up", {})
    rudder_request._session.close()
    assert raised.value.status == 401
    assert counts(store).get("records:website", 0) == 0


def test_rudderstack_bad_call_is_quarantined_naming_the_field(rudder: Client, store: CustomerStore) -> None:
    with pytest.raises(rudder_request.APIError) as raised:
        rudder.track("r-4", "Order Completed", {"revenue": "plenty"}, message_id="rudder-bad-revenue")
    assert raised.value.status == 400
    entries: list[dict[str, Any]] = store.quarantine_entries(OPS, source="website")
    assert len(entries) == 1
    assert "revenue" in entries[0]["reason"]
    assert "rudder-bad-revenue" in entries[0]["position"]
