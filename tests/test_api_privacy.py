"""The HTTP API: keys bound to actor and role, declared purpose, masking and audit at the access layer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import write_fixture_files
from litestar import Litestar
from litestar.testing import TestClient

from cdp.access import AccessContext, CustomerStore
from cdp.api import create_app
from cdp.pipeline import SourceSpec, ingest, resolve

KEYS = ("ann:compliance_officer:officer-key", "mia:marketer:marketer-key")


@pytest.fixture
def client(store: CustomerStore, tmp_path: Path) -> Iterator[tuple[TestClient[Litestar], CustomerStore]]:
    for name, path in write_fixture_files(tmp_path / "src").items():
        ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
    resolve(store, store.settings)
    store.settings = replace(store.settings, api_keys=KEYS)
    with TestClient(app=create_app(store.settings, store=store)) as test_client:
        yield test_client, store


def _alice(store: CustomerStore) -> str:
    return store.find_profiles(
        AccessContext("t", "compliance_officer", "dsr"), kind="email", value="alice.smith@example.com"
    )[0]


def test_profile_reads_are_masked_per_role_and_need_a_purpose(
    client: tuple[TestClient[Litestar], CustomerStore],
) -> None:
    http, store = client
    alice = _alice(store)
    officer = http.get(
        f"/api/profiles/{alice}?fields=email,phone,country",
        headers={"Authorization": "Bearer officer-key", "X-CDP-Purpose": "compliance"},
    )
    assert officer.status_code == 200 and officer.json()["email"] == "alice.smith@example.com"
    marketer = http.get(
        f"/api/profiles/{alice}?fields=email,street",
        headers={"Authorization": "Bearer marketer-key", "X-CDP-Purpose": "analytics"},
    )
    assert marketer.status_code == 200
    assert marketer.json()["email"] == "a***@example.com" and "street" not in marketer.json()
    no_purpose = http.get(f"/api/profiles/{alice}", headers={"Authorization": "Bearer marketer-key"})
    assert no_purpose.status_code == 403
    spoofed = http.get(
        f"/api/profiles/{alice}", headers={"Authorization": "Bearer marketer-key", "X-CDP-Purpose": "compliance"}
    )
    assert spoofed.status_code == 403
    assert (
        http.get(
            f"/api/profiles/{alice}", headers={"Authorization": "Bearer nope", "X-CDP-Purpose": "analytics"}
        ).status_code
        == 401
    )
    denials = store.search_audit(
        AccessContext("t", "compliance_officer", "compliance"), actor="api:mia", decision="deny"
    )
    assert len(denials) == 2


def test_dsr_and_consent_over_http(client: tuple[TestClient[Litestar], CustomerStore]) -> None:
    http, _ = client
    officer = {"Authorization": "Bearer officer-key", "X-CDP-Purpose": "dsr"}
    response = http.post("/api/dsr", json={"kind": "access", "identifier": "ALICE.SMITH@example.com"}, headers=officer)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "done" and {r["source"] for r in body["export"]["records"]} == {"website", "pos", "survey"}
    consent = http.post(
        "/api/consents",
        json={"profile_id": body["profile_id"], "purpose": "marketing_email", "status": "withdrawn"},
        headers={"Authorization": "Bearer officer-key", "X-CDP-Purpose": "compliance"},
    )
    assert consent.status_code == 201
    denied = http.post(
        "/api/dsr",
        json={"kind": "erasure", "identifier": "alice.smith@example.com"},
        headers={"Authorization": "Bearer marketer-key", "X-CDP-Purpose": "dsr"},
    )
    assert denied.status_code == 403
    unknown = http.post("/api/dsr", json={"kind": "access", "identifier": "ghost@example.com"}, headers=officer)
    assert unknown.status_code == 404
    assert http.get("/api/dsr/overdue", headers=officer).json() == []
