"""Idempotency keys only where a record has its own message id (migration 0006), and nothing else changes.

Why: a record without a message id is known by its (source, stream, source
record id), which a unique index already guards, so the ingest stores no
second, random key for it (NULL, outside the partial unique index) and looks
it up by that triple. Re-sending the same record, file line or message id must
stay a no-op, records stored before the migration (with keys) must still be
found, and the migration itself (a table rebuild on SQLite, done with foreign
keys off) must keep every row, blind index, event and trigger, both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, inspect, text

from cdp.access import CustomerStore
from cdp.access import _tables as t
from cdp.access._ingest import _LOOKUPS, lookup
from cdp.access.context import connector_context
from cdp.access.database import current_revision, downgrade, upgrade
from cdp.connectors.website import call_to_record
from cdp.model import EventData, IncomingRecord

WHEN = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)


def _record(n: int, *, source: str = "pos", stream: str = "orders", message_id: str | None = None) -> IncomingRecord:
    return IncomingRecord(
        source=source,
        stream=stream,
        source_record_id=f"o{n}",
        occurred_at=WHEN,
        payload={"n": n},
        identity={"email": f"p{n % 3}@example.org"},
        match_keys={"email": f"p{n % 3}@example.org"},
        events=[EventData("track", WHEN, "Order Completed", revenue=n)],
        message_id=message_id,
    )


def _call(n: int) -> IncomingRecord:
    return call_to_record(
        {
            "type": "track",
            "messageId": f"m-{n}",
            "anonymousId": f"a{n}",
            "event": "Viewed",
            "timestamp": WHEN.isoformat(),
        }
    )


def _keys(store: CustomerStore) -> dict[str, str | None]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            t.records.select().with_only_columns(t.records.c.source_record_id, t.records.c.idempotency_key)
        )
        return {str(rid): key for rid, key in rows}


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            for table in ("records", "blind_indexes", "events", "consents", "subject_keys")
        }


def test_only_records_with_their_own_message_id_store_a_key(store: CustomerStore) -> None:
    ctx = connector_context("pos")
    plain = [_record(n) for n in range(4)]
    messages = [_record(n, stream="feed", message_id=f"msg-{n}") for n in range(10, 13)]
    calls = [_call(n) for n in range(3)]
    assert all(record.message_id is None for record in calls)  # the message id is the website record's id
    first = store.ingest_many(ctx, [plain, messages, calls])
    assert [o.accepted for o in first] == [4, 3, 3]
    keys = _keys(store)
    assert [keys[f"o{n}"] for n in range(4)] == [None] * 4
    assert [keys[f"m-{n}"] for n in range(3)] == [None] * 3
    assert [keys[f"o{n}"] for n in range(10, 13)] == [r.idempotency_key for r in messages]
    again = store.ingest_many(ctx, [plain, messages, calls])
    assert [(o.accepted, o.duplicates) for o in again] == [(0, 4), (0, 3), (0, 3)]
    # a message id is a no-op across the source's streams and record ids, as before
    moved = [_record(99, stream="other", message_id="msg-10")]
    assert (store.ingest(ctx, moved).accepted, store.ingest(ctx, moved).duplicates) == (0, 1)
    # the triple is per (source, stream): the same record id in another stream or source is another record
    elsewhere = [_record(0, stream="returns"), _record(0, source="pos2")]
    assert store.ingest(ctx, elsewhere).accepted == 2
    # duplicates inside one batch, either kind, count once
    twice = [_record(50), _record(50), _record(51, message_id="msg-51"), _record(52, message_id="msg-51")]
    outcome = store.ingest(ctx, twice)
    assert (outcome.accepted, outcome.duplicates) == (2, 2)
    assert _counts(store.engine)["records"] == 4 + 3 + 3 + 2 + 2


def test_lookup_by_source_stream_and_record_id_matches_reference(store: CustomerStore) -> None:
    ctx = connector_context("pos")
    store.ingest(ctx, [_record(n) for n in range(5)])
    asked = [f"o{n}" for n in range(3)] + [f"x{i}" for i in range(2000)] + ["o4"]  # more than one chunk
    with store.engine.connect() as connection:
        reference = {
            row[0]
            for row in connection.execute(
                _LOOKUPS["stored_ids"][0], {"values": asked, "source": "pos", "stream": "orders"}
            )
        }
        assert {row[0] for row in lookup(connection, "stored_ids", asked, ("pos", "orders"))} == reference
        assert reference == {"o0", "o1", "o2", "o4"}
        assert lookup(connection, "stored_ids", asked, ("pos", "returns")) == []
        if connection.dialect.name == "sqlite":  # both look-ups go through an index
            plans = [
                " ".join(
                    str(row[-1])
                    for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql.format("?, ?", mark="?"), params)
                )
                for sql, params in (
                    (_LOOKUPS["stored"][1], ("a", "b")),
                    (_LOOKUPS["stored_ids"][1], ("pos", "orders", "a", "b")),
                )
            ]
            assert "uq_records_idempotency_key" in plans[0]
            assert all("INDEX" in plan and "SCAN" not in plan for plan in plans), plans


def _schema(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    out: dict[str, Any] = {
        "key": next(c for c in inspector.get_columns("records") if c["name"] == "idempotency_key")["nullable"],
        "unique": sorted(u["name"] for u in inspector.get_unique_constraints("records")),
        "indexes": sorted(i["name"] for i in inspector.get_indexes("records")),
    }
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            out["triggers"] = sorted(
                r[0]
                for r in connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'records'"
                )
            )
            out["foreign_keys"] = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    return out


def test_migration_0006_keeps_every_row_both_ways(store: CustomerStore) -> None:
    ctx = connector_context("pos")
    store.ingest_many(
        ctx,
        [
            [_record(n) for n in range(6)],
            [_record(n, stream="feed", message_id=f"msg-{n}") for n in range(6, 9)],
            [_call(n) for n in range(4)],
        ],
    )
    before, keys, schema = _counts(store.engine), _keys(store), _schema(store.engine)
    assert before["blind_indexes"] > 0 and before["events"] == 13
    assert schema["key"] is True and "uq_records_idempotency_key" in schema["indexes"]
    if "triggers" in schema:
        assert schema["triggers"] == ["golden_dirty_records_delete", "golden_dirty_records_update"]
        assert schema["foreign_keys"] == 1

    assert downgrade(store.engine, "0005") == "0005"
    down = _schema(store.engine)
    if "triggers" in schema:  # 0007 dropped the insert trigger (a new record has no links), and undoes it
        assert down["triggers"] == sorted([*schema["triggers"], "golden_dirty_records_insert"])
    assert down["key"] is False and "uq_records_idempotency_key" in down["unique"]
    assert _counts(store.engine) == before  # no cascade from the rebuild
    filled = _keys(store)
    assert all(filled.values()) and len(set(filled.values())) == len(filled)
    assert {k: v for k, v in filled.items() if keys[k] is not None} == {k: v for k, v in keys.items() if v is not None}
    assert down.get("foreign_keys") == schema.get("foreign_keys")

    assert upgrade(store.engine) == current_revision(store.engine) == "0009"
    assert _schema(store.engine) == schema
    assert _counts(store.engine) == before
    assert _keys(store) == filled  # keys stored before the upgrade stay
    again = store.ingest_many(
        ctx,
        [
            [_record(n) for n in range(6)],
            [_record(n, stream="feed", message_id=f"msg-{n}") for n in range(6, 9)],
            [_call(n) for n in range(4)],
        ],
    )
    assert [(o.accepted, o.duplicates) for o in again] == [(0, 6), (0, 3), (0, 4)]
    with store.engine.connect() as connection:  # the blind indexes still point at their records
        orphans = connection.execute(
            text("SELECT count(*) FROM blind_indexes b LEFT JOIN records r ON r.id = b.record_id WHERE r.id IS NULL")
        ).scalar()
    assert orphans == 0


def test_a_link_cannot_name_a_record_before_it_exists(store: CustomerStore) -> None:
    """Migration 0007 dropped the trigger on inserting a record because of this: a new record has no links."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    with store.engine.begin() as connection:
        connection.execute(t.profiles.insert().values(id="p_x", created_at=WHEN, updated_at=WHEN))
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"), store.engine.begin() as connection:
        connection.execute(
            t.record_links.insert().values(
                record_id="r_not_stored_yet", profile_id="p_x", linked_at=WHEN, reason="test"
            )
        )
