"""Privacy core: no plaintext identifiers at rest, AAD binding, crypto-shredding, rotation, fail closed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from demo_helpers import build, find_plaintext, plaintexts
from sqlalchemy import inspect, text

from cdp._exceptions import DecryptionFailed, KeyUnavailable
from cdp.access import AccessContext, CustomerStore, open_store
from cdp.demo import DemoFiles

OFFICER = AccessContext("officer", "compliance_officer", "compliance")
QUASI_OR_BEHAVIOURAL = {"records.city", "records.state", "records.country", "records.postcode", "records.gender"}
SKIP_NAME_CHECK_TABLES = {"events", "tags", "segments", "sources", "identity_runs", "alembic_version"}


@pytest.fixture
def demo(store: CustomerStore, tmp_path: Path) -> DemoFiles:
    return build(store, tmp_path / "demo")


def _cells(store: CustomerStore) -> list[tuple[str, bytes]]:
    """Every cell of every table as (table.column, bytes): what someone opening the database sees."""
    out: list[tuple[str, bytes]] = []
    with store.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"'))
            names = list(rows.keys())
            for row in rows:
                for column, value in zip(names, row, strict=True):
                    if value is None:
                        continue
                    blob = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode("utf-8")
                    out.append((f"{table}.{column}", blob))
    return out


def test_no_plaintext_direct_identifier_anywhere_in_the_database(store: CustomerStore, demo: DemoFiles) -> None:
    secrets = plaintexts(demo)
    assert len(secrets.emails) > 50 and len(secrets.phone_digits) > 50 and len(secrets.names) > 50
    leaks: list[str] = []
    cells = _cells(store)
    assert len(cells) > 10_000
    for where, blob in cells:
        check_names = where.split(".")[0] not in SKIP_NAME_CHECK_TABLES and where not in QUASI_OR_BEHAVIOURAL
        leaks += [f"{where}: {hit}" for hit in find_plaintext(blob, secrets, check_names=check_names)]
    assert leaks == []
    if store.settings.is_sqlite:
        database = Path(store.settings.database_url.removeprefix("sqlite:///"))
        for path in [database, *database.parent.glob(database.name + "-wal")]:
            assert find_plaintext(path.read_bytes(), secrets, check_names=False) == []
    assert not list(store.settings.data_dir.rglob("*.duckdb"))


def test_the_scan_would_see_a_plaintext_identifier(store: CustomerStore, demo: DemoFiles) -> None:
    secrets = plaintexts(demo)
    planted = sorted(secrets.emails)[0]
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE records SET city = :v WHERE id = (SELECT min(id) FROM records)"), {"v": planted}
        )
    assert any(find_plaintext(blob, secrets, check_names=False) for _, blob in _cells(store))


def test_a_ciphertext_moved_to_another_row_or_field_fails(store: CustomerStore, demo: DemoFiles) -> None:
    with store.engine.begin() as connection:
        rows = connection.execute(
            text(
                "SELECT r.id, r.email_enc, r.key_id, l.profile_id FROM records r JOIN record_links l ON l.record_id = r.id "
                "WHERE r.email_enc IS NOT NULL AND l.unlinked_at IS NULL ORDER BY r.id LIMIT 2"
            )
        ).all()
        (a_id, a_email, a_key, _), (b_id, _, _other_key, b_profile) = rows
        # same key, other row: the record id in the associated data no longer matches
        connection.execute(
            text("UPDATE records SET email_enc = :c, key_id = :k WHERE id = :b"), {"c": a_email, "k": a_key, "b": b_id}
        )
    store._ciphers.clear()
    with pytest.raises(DecryptionFailed, match=f"record '{b_id}'"):
        store.subject_export(OFFICER, b_profile)
    cipher = store.cipher(store.engine.connect(), a_key)
    assert cipher.decrypt(a_email, record_id=a_id, field="email")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(a_email, record_id=a_id, field="phone")


def _profiles_with_email(store: CustomerStore) -> dict[str, Any]:
    return {r["profile_id"]: r["email"] for r in store.read_profiles(OFFICER, ["email"]) if r.get("email")}


def test_crypto_shredding_one_person_leaves_everyone_else_readable_backups_included(
    store: CustomerStore, demo: DemoFiles
) -> None:
    before = _profiles_with_email(store)
    victim = sorted(before)[0]
    with store.engine.connect() as connection:
        backup = connection.execute(
            text(
                "SELECT r.id, r.key_id, r.email_enc FROM records r JOIN record_links l ON l.record_id = r.id "
                "WHERE l.profile_id = :p AND l.unlinked_at IS NULL AND r.email_enc IS NOT NULL"
            ),
            {"p": victim},
        ).all()
    assert backup
    result = store.erase_subject(AccessContext("officer", "compliance_officer", "dsr"), victim)
    assert result["keys_shredded"] >= 1
    store._ciphers.clear()
    after = _profiles_with_email(store)
    assert victim not in after
    assert {p: e for p, e in before.items() if p != victim} == after
    # A restored backup of the database still holds the ciphertext, but the key is gone for good.
    with store.engine.connect() as connection:
        for record_id, key_id, token in backup:
            with pytest.raises(DecryptionFailed):
                store.cipher(connection, key_id).decrypt(token, record_id=record_id, field="email")


def test_key_rotation_rewraps_every_data_key(store: CustomerStore, demo: DemoFiles) -> None:
    before = _profiles_with_email(store)
    old = store.keyring.current_kek_id()
    count, new = store.rotate_keys(AccessContext("ops", "compliance_officer", "operations"))
    assert count > 0 and new != old
    store.keyring.retire(old)
    store._ciphers.clear()
    assert _profiles_with_email(store) == before
    assert not store.keystore.not_under(new)


def test_reads_fail_closed_when_the_key_encryption_key_is_gone(
    settings: Any, store: CustomerStore, demo: DemoFiles
) -> None:
    store.close()
    for kek in settings.keys_dir.glob("kek-*.key"):
        kek.unlink()
    reopened = open_store(settings)
    try:
        with pytest.raises(KeyUnavailable):
            reopened.read_profiles(OFFICER, ["email"])
    finally:
        reopened.close()


def test_wrapped_keys_are_not_stored_in_the_database(store: CustomerStore, demo: DemoFiles) -> None:
    columns = {c["name"] for c in inspect(store.engine).get_columns("subject_keys")}
    assert columns == {"id", "kek_id", "created_at", "destroyed_at"}
    assert store.keystore.count() > 0
    assert store.keystore.path.stat().st_mode & 0o077 == 0
    shutil.copy(store.keystore.path, store.settings.data_dir / "copy.sqlite")


def test_special_category_data_is_never_stored(store: CustomerStore, tmp_path: Path) -> None:
    import json

    from cdp.pipeline import SourceSpec, ingest, resolve

    call = {
        "type": "identify",
        "messageId": "m-sens-1",
        "timestamp": "2026-10-01T10:00:00Z",
        "userId": "u_9",
        "traits": {
            "email": "sensitive.person@example.com",
            "religion": "pastafarian",
            "health": {"diagnosis": "flu"},
            "address": {"city": "Berlin", "country": "DE", "latitude": 52.52},
        },
    }
    path = tmp_path / "sens.jsonl"
    path.write_text(json.dumps(call) + "\n", encoding="utf-8")
    ingest(store, store.settings, SourceSpec("website", {"path": str(path)}))
    resolve(store, store.settings)
    profile = store.find_profiles(OFFICER, kind="email", value="sensitive.person@example.com")[0]
    payload = store.subject_export(OFFICER, profile)["records"][0]["payload"]
    assert "religion" not in payload["traits"] and "health" not in payload["traits"]
    assert "latitude" not in payload["traits"]["address"] and payload["traits"]["address"]["city"] == "Berlin"
    assert "pastafarian" not in json.dumps(payload)
