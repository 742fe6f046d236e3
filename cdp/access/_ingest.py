"""Writing incoming records: encryption, blind indexes, idempotency, quarantine.

A record's direct identifiers are encrypted with its person's data key before
they reach the database. The person's key is found through the blind indexes
of strong identifiers (email, loyalty id, user id, anonymous id) already
stored, so one person's records share one key and erasure can shred it;
otherwise a new key is made. Re-sending a record (same source, stream and
record id, or same message id) is a no-op.

This is the ingestion hot path, so rows are inserted through one compiled
statement per table and the driver's ``executemany`` (no per-row SQLAlchemy
parameter processing), several batches can share one transaction
(:meth:`IngestMixin.ingest_many`, used by the HTTP endpoint's group commit),
and a connector's cursor can be saved in the batch's own transaction, so a
crash can never separate "stored" from "read up to here".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, Dialect, Select, bindparam, func, insert, select, update

from cdp.access import _tables as t
from cdp.access._bulk import bulk_insert
from cdp.access._core import StoreCore, new_id, now
from cdp.access._rows import (
    CONSENT_COLUMNS,
    EVENT_COLUMNS,
    INDEX_COLUMNS,
    KEY_SHARING_KINDS,
    READY_CLEAR,
    READY_CONSENTS,
    READY_EVENTS,
    READY_ID,
    READY_IDENTITY,
    READY_INDEXES,
    READY_KEY,
    READY_KIND,
    READY_OCCURRED,
    READY_PAYLOAD,
    READY_SHARING,
    RECORD_COLUMNS,
    Ready,
    RowMaker,
    payload_json,
    record_digests,
    record_ids,
)
from cdp.access.context import AccessContext
from cdp.crypto.fields import FieldCipher, RecordEncryptor
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS, IncomingRecord, IngestOutcome

INGEST_FIELDS = (*IDENTITY_FIELDS, *CLEAR_FIELDS, "anonymous_id", "event_name", "revenue", "consent")
CHUNK = 900  # bound parameters per IN (...) query, under SQLite's historical limit of 999
DUPLICATE = ""  # per-record outcome of a record already stored
SUPPRESSED = "-"  # per-record outcome of a record of an erased person
_NOT_STORED = frozenset({DUPLICATE, SUPPRESSED})
KEY_COLUMNS = ("id", "kek_id", "created_at")
_ENCRYPTED_FIELDS = ("payload", *IDENTITY_FIELDS)  # the order of the *_enc columns in RECORD_COLUMNS
_ENCRYPTOR = RecordEncryptor(_ENCRYPTED_FIELDS)
_SHARING_KINDS = frozenset(KEY_SHARING_KINDS)

__all__ = [
    "KEY_SHARING_KINDS",
    "READY_ID",
    "READY_KEY",
    "IngestMixin",
    "Ready",
    "RowMaker",
    "payload_json",
    "record_digests",
    "record_ids",
]


# The look-ups of the hot path. SQLAlchemy renders an expanding IN (...) of 900 values on every
# call (about 0.7 CPU s per 100,000 records); the driver takes the same SQL with positional
# parameters as it is, so on drivers with positional parameters (SQLite, psycopg) the text is made
# once per list length and run with exec_driver_sql. The statements below are the reference (and
# the fallback for other parameter styles); test_ingest_lookups_match_reference checks both agree.


def _values() -> BindParameter[Any]:
    return bindparam("values", expanding=True)


_KINDS = ", ".join(f"'{kind}'" for kind in KEY_SHARING_KINDS)
_LOOKUPS: dict[str, tuple[Select[Any], str]] = {
    "stored": (
        select(t.records.c.idempotency_key).where(t.records.c.idempotency_key.in_(_values())),
        "SELECT idempotency_key FROM records WHERE idempotency_key IN ({})",
    ),
    "stored_ids": (
        select(t.records.c.source_record_id).where(
            t.records.c.source == bindparam("source"),
            t.records.c.stream == bindparam("stream"),
            t.records.c.source_record_id.in_(_values()),
        ),
        "SELECT source_record_id FROM records WHERE source = {mark} AND stream = {mark} AND source_record_id IN ({})",
    ),
    "suppressed": (
        select(t.suppressions.c.digest).where(t.suppressions.c.digest.in_(_values())),
        "SELECT digest FROM suppressions WHERE digest IN ({})",
    ),
    "first_holders": (
        select(t.blind_indexes.c.digest, func.min(t.blind_indexes.c.record_id))
        .where(t.blind_indexes.c.kind == bindparam("kind"), t.blind_indexes.c.digest.in_(_values()))
        .group_by(t.blind_indexes.c.digest),
        "SELECT digest, MIN(record_id) FROM blind_indexes WHERE kind = {mark} AND digest IN ({}) GROUP BY digest",
    ),
    "holders": (
        select(t.blind_indexes.c.digest, t.blind_indexes.c.record_id).where(
            t.blind_indexes.c.kind.in_(KEY_SHARING_KINDS), t.blind_indexes.c.digest.in_(_values())
        ),
        f"SELECT digest, record_id FROM blind_indexes WHERE kind IN ({_KINDS}) AND digest IN ({{}})",
    ),
    "live_keys": (
        select(t.records.c.id, t.records.c.key_id)
        .join(t.subject_keys, t.subject_keys.c.id == t.records.c.key_id)
        .where(t.records.c.id.in_(_values()), t.subject_keys.c.destroyed_at.is_(None)),
        "SELECT records.id, records.key_id FROM records JOIN subject_keys ON subject_keys.id = records.key_id"
        " WHERE records.id IN ({}) AND subject_keys.destroyed_at IS NULL",
    ),
}
_FIXED = {"stored_ids": ("source", "stream"), "first_holders": ("kind",)}  # parameters besides the values
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@functools.lru_cache(maxsize=64)
def _lookup_sql(name: str, paramstyle: str, count: int) -> str | None:
    """The driver SQL of look-up ``name`` for ``count`` values, or None for another parameter style."""
    mark = _MARKS.get(paramstyle)
    if mark is None:
        return None
    return _LOOKUPS[name][1].format(", ".join([mark] * count), mark=mark)


def lookup(
    connection: Connection, name: str, values: Sequence[str], where: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """The rows of look-up ``name`` for ``values`` (any number: run in chunks of CHUNK); ``where``
    is the (source, stream) of ``stored_ids``, the (kind,) of ``first_holders``."""
    rows: list[tuple[Any, ...]] = []
    paramstyle = str(connection.dialect.paramstyle)
    fixed = dict(zip(_FIXED.get(name, ()), where, strict=True))
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        sql = _lookup_sql(name, paramstyle, len(chunk))
        if sql is None:
            rows.extend(tuple(row) for row in connection.execute(_LOOKUPS[name][0], {"values": list(chunk), **fixed}))
        else:
            rows.extend(connection.exec_driver_sql(sql, (*fixed.values(), *chunk)).fetchall())
    return rows


class IngestMixin(StoreCore):
    def _ensure_sources(self, connection: Connection, names: set[str]) -> None:
        wanted = names - self._known_sources()
        if not wanted:
            return
        existing = set(connection.execute(select(t.sources.c.name).where(t.sources.c.name.in_(wanted))).scalars())
        for name in sorted(wanted - existing):
            connection.execute(insert(t.sources).values(name=name, kind="connector", created_at=now()))

    def _known_sources(self) -> set[str]:
        """Sources known to exist (filled after commits; sources are never deleted)."""
        known: set[str] = self.__dict__.setdefault("_ingest_known_sources", set())
        return known

    def _existing_keys(self, connection: Connection, kinds: Mapping[str, str]) -> dict[str, str]:
        """The live data key of each known identifier among ``kinds`` (digest -> its kind): the key
        of its first holder (smallest record id) whose key is not destroyed.

        Two index lookups instead of one three-table join: a join's plan depends on table
        statistics, and right after a bulk load (or with autovacuum off) PostgreSQL planned it
        as a nested loop over every person's key, seconds per batch. The first asks, per kind, only
        each identifier's first holder (one row per identifier, however many records hold it, and
        ``kind = ?`` rather than four kinds times every digest); only identifiers whose first
        holder's key was destroyed go through every holder (:meth:`_first_live_keys`).
        """
        by_kind: dict[str, list[str]] = {}
        for digest, kind in kinds.items():
            by_kind.setdefault(kind, []).append(digest)
        first: dict[str, str] = {}
        for kind in sorted(by_kind):
            first.update(lookup(connection, "first_holders", sorted(by_kind[kind]), (kind,)))
        if not first:
            return {}
        live = dict(lookup(connection, "live_keys", sorted(set(first.values()))))
        found = {digest: live[record_id] for digest, record_id in first.items() if record_id in live}
        dead = {digest for digest in first if digest not in found}
        if dead:
            found.update(self._first_live_keys(connection, dead))
        return found

    def _first_live_keys(self, connection: Connection, digests: set[str]) -> dict[str, str]:
        """Per digest, the key of its first holder with a live key, looking at every holder."""
        holders: dict[str, list[str]] = {}
        for digest, record_id in lookup(connection, "holders", sorted(digests)):
            holders.setdefault(digest, []).append(record_id)
        key_of: dict[str, str] = {}
        if holders:
            held = sorted({r for records in holders.values() for r in records})
            key_of.update((record_id, key_id) for record_id, key_id in lookup(connection, "live_keys", held))
        found: dict[str, str] = {}
        for digest in sorted(holders):
            key = next((key_of[r] for r in sorted(holders[digest]) if r in key_of), None)
            if key is not None:
                found[digest] = key
        return found

    def row_maker(self, dialect: Dialect | None = None, *, remember_digests: bool = False) -> RowMaker:
        """A :class:`RowMaker` with this store's policy, blind indexer and evidence hashing. Pass the
        store's dialect only where the rows are made in another process (the worker), see RowMaker;
        ``remember_digests`` only for a maker used for one run and dropped (it keeps identifiers)."""
        policy = self.policy.policy
        return RowMaker(
            policy.sensitive_keys,
            self.indexer.index,
            policy.jurisdiction_of,
            self.hash_evidence,
            dialect,
            remember_digests=remember_digests,
        )

    def ingest(
        self,
        ctx: AccessContext,
        batch: Sequence[IncomingRecord],
        *,
        cursor: tuple[str, str, Any] | None = None,
    ) -> IngestOutcome:
        """Store a batch in one transaction. Returns accepted and duplicate counts.

        ``cursor`` (connector, stream, state), when given, is saved in the same
        transaction: the batch and "read up to here" commit together or not at all.
        """
        return self.ingest_many(ctx, [batch], cursor=cursor)[0]

    def ingest_many(
        self,
        ctx: AccessContext,
        batches: Sequence[Sequence[IncomingRecord]],
        *,
        cursor: tuple[str, str, Any] | None = None,
    ) -> list[IngestOutcome]:
        """Store several batches in one transaction (group commit); one outcome per batch."""
        maker = self.row_maker()  # made per call: the policy may have been reloaded
        return self.ingest_ready(ctx, [maker.make(batch) for batch in batches], cursor=cursor)

    def ingest_ready(
        self,
        ctx: AccessContext,
        batches: Sequence[Sequence[Ready]],
        *,
        cursor: tuple[str, str, Any] | None = None,
        converted: bool = False,
    ) -> list[IngestOutcome]:
        """:meth:`ingest_many` of records already made ready by :meth:`row_maker` (``converted``: by
        a maker given this store's SQLite dialect)."""
        flat = [record for batch in batches for record in batch]
        with self.access(ctx, action="write", resource="records", fields=INGEST_FIELDS) as work:
            ids = self._write(work.connection, flat, converted)
            if cursor is not None:
                self._save_cursor(work.connection, *cursor)
            outcomes: list[IngestOutcome] = []
            new_ids = [i for i in ids if i not in _NOT_STORED]
            everything_new = len(new_ids) == len(ids)
            start = 0
            for batch in batches:
                part = ids[start : start + len(batch)]
                start += len(batch)
                stored = tuple(part if everything_new else [i for i in part if i not in _NOT_STORED])
                suppressed = part.count(SUPPRESSED)
                outcomes.append(IngestOutcome(len(stored), len(part) - len(stored) - suppressed, stored, suppressed))
            work.touch(new_ids)
            duplicates = sum(o.duplicates for o in outcomes)
            suppressed_total = sum(o.suppressed for o in outcomes)
            work.detail = f"accepted={len(new_ids)} duplicates={duplicates} suppressed={suppressed_total}"
            if cursor is not None:
                work.detail += " cursor saved"
        self._known_sources().update(r[1] for r in flat)
        self.note_bulk_write(sum(o.accepted for o in outcomes))
        return outcomes

    def _fresh(self, connection: Connection, batch: Sequence[Ready]) -> list[int]:
        """Positions of the records not stored yet (nor earlier in the batch).

        A record with a message id is known by its idempotency key; one without (key None) by its
        (source, stream, source record id), looked up per (source, stream) through the unique index
        on those columns. See migration 0006.
        """
        keys = [record[READY_KEY] for record in batch]
        keyed = [key for key in keys if key is not None]
        seen: set[Any] = {row[0] for row in lookup(connection, "stored", keyed)} if keyed else set()
        streams: dict[tuple[str, str], list[str]] = {}
        for record, key in zip(batch, keys, strict=True):
            if key is None:
                streams.setdefault((record[1], record[2]), []).append(record[3])
        for (source, stream), ids in streams.items():
            seen.update((source, stream, row[0]) for row in lookup(connection, "stored_ids", ids, (source, stream)))
        fresh: list[int] = []
        for position, (record, key) in enumerate(zip(batch, keys, strict=True)):
            known = key if key is not None else (record[1], record[2], record[3])
            if known not in seen:
                seen.add(known)
                fresh.append(position)
        return fresh

    def _write(self, conn: Connection, batch: Sequence[Ready], converted: bool = False) -> list[str]:
        """Store ``batch``; per record, its new id, or DUPLICATE, or SUPPRESSED."""
        out = [DUPLICATE] * len(batch)
        if not batch:
            return out
        self._ensure_sources(conn, {r[1] for r in batch})
        fresh = self._fresh(conn, batch)
        suppressed = self._suppressed(conn, {row[2] for i in fresh for row in batch[i][READY_INDEXES]})
        if suppressed:
            for i in fresh:
                if not suppressed.isdisjoint(row[2] for row in batch[i][READY_INDEXES]):
                    out[i] = SUPPRESSED
            fresh = [i for i in fresh if out[i] != SUPPRESSED]
        existing = self._existing_keys(
            conn, {row[2]: row[1] for i in fresh for row in batch[i][READY_INDEXES] if row[1] in _SHARING_KINDS}
        )
        self.load_ciphers(conn, set(existing.values()))
        # Which key each record uses: an existing person's, else a new one (shared within the batch).
        key_for_digest: dict[str, str | int] = dict(existing)
        slots: list[str | int] = []
        new_keys = 0
        for i in fresh:
            sharing = batch[i][READY_SHARING]
            slot = next((key_for_digest[d] for d in sharing if d in key_for_digest), None)
            if slot is None:
                slot, new_keys = new_keys, new_keys + 1
            for digest in sharing:
                key_for_digest.setdefault(digest, slot)
            slots.append(slot)
        created = self.create_keys(new_keys)
        records_insert = bulk_insert(conn, t.records, RECORD_COLUMNS)
        received = now()
        stamp: Any = received
        consents_insert = bulk_insert(conn, t.consents, CONSENT_COLUMNS)
        consent_stamp: Any = received
        if converted:  # the rest of each row is in the driver's form already: so must this be
            process = records_insert.processor("received_at")
            stamp = process(received) if process is not None else received
            process = consents_insert.processor("recorded_at")
            consent_stamp = process(received) if process is not None else received
        index_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        consent_rows: list[tuple[Any, ...]] = []
        ciphers: dict[str, FieldCipher] = {}
        key_ids: list[str] = []
        sealing: list[tuple[FieldCipher, str, Sequence[str | bytes | None]]] = []
        for i, slot in zip(fresh, slots, strict=True):
            ready = batch[i]
            record_id = ready[READY_ID]
            out[i] = record_id
            if isinstance(slot, int):
                key_id, cipher, _ = created[slot]
            else:
                key_id = slot
                found = ciphers.get(key_id)
                cipher = found if found is not None else ciphers.setdefault(key_id, self.cipher(conn, key_id))
            key_ids.append(key_id)
            identity = ready[READY_IDENTITY]
            payload = ready[READY_PAYLOAD]
            sealing.append((cipher, record_id, (payload,) if identity is None else (payload, *identity)))
            index_rows += ready[READY_INDEXES]
            event_rows += ready[READY_EVENTS]
            for consent in ready[READY_CONSENTS]:
                consent_rows.append(consent if consent[8] is not None else (*consent[:8], consent_stamp, consent[9]))
        record_rows = [
            (*ready[:5], stamp, ready[READY_OCCURRED], key_id, ready[READY_KIND], *tokens, *ready[READY_CLEAR])
            for ready, key_id, tokens in zip(
                [batch[i] for i in fresh], key_ids, _ENCRYPTOR.encrypt_many(sealing), strict=True
            )
        ]
        keys_insert = bulk_insert(conn, t.subject_keys, KEY_COLUMNS)
        created_at: Any = received
        keys_converted = set(keys_insert.processor_of) == {"created_at"}
        if keys_converted:  # one conversion for all the keys, not one per row
            created_at = keys_insert.processor_of["created_at"](received)
        keys_insert.run(conn, [(k, kek, created_at) for k, _, kek in created], converted=keys_converted)
        records_insert.run(conn, record_rows, converted=converted)
        bulk_insert(conn, t.blind_indexes, INDEX_COLUMNS).run(conn, index_rows)
        bulk_insert(conn, t.events, EVENT_COLUMNS).run(conn, event_rows, converted=converted)
        consents_insert.run(conn, consent_rows, converted=converted)
        return out

    def _suppressed(self, connection: Connection, digests: set[str]) -> set[str]:
        """Digests of identifiers that belong to erased people (suppression list)."""
        return {row[0] for row in lookup(connection, "suppressed", sorted(digests))} if digests else set()

    # -- quarantine -----------------------------------------------------------------------------

    def quarantine(
        self, ctx: AccessContext, *, source: str, stream: str, position: str, field: str | None, reason: str, raw: str
    ) -> bool:
        """Keep a rejected record (encrypted) with the reason. Returns False if already quarantined."""
        entry = {"source": source, "stream": stream, "position": position, "field": field, "reason": reason, "raw": raw}
        return self.quarantine_many(ctx, [entry]) == 1

    def quarantine_many(self, ctx: AccessContext, entries: Sequence[Mapping[str, Any]]) -> int:
        """Quarantine several rejected records in one transaction; returns how many were new.

        Each entry has ``source, stream, position, field, reason, raw``. An entry
        already quarantined at the same (source, position) is re-opened with the
        new reason instead of being added twice (a re-read after a crash).
        """
        if not entries:
            return 0
        with self.access(ctx, action="write", resource="quarantine", fields=("record_id",)) as work:
            conn = work.connection
            added = 0
            touched: list[str] = []
            for entry in entries:
                position = str(entry["position"])[:500]
                field = entry.get("field") or None
                field = str(field)[:200] if field else None
                reason = str(entry["reason"])[:2000]
                exists = conn.execute(
                    select(t.quarantine.c.id).where(
                        t.quarantine.c.source == entry["source"], t.quarantine.c.position == position
                    )
                ).first()
                if exists is not None:
                    conn.execute(
                        update(t.quarantine)
                        .where(t.quarantine.c.id == exists.id)
                        .values(status="open", reason=reason, field=field)
                    )
                    touched.append(exists.id)
                    continue
                entry_id = new_id("q")
                key_id, cipher = self.create_key(conn)
                conn.execute(
                    insert(t.quarantine).values(
                        id=entry_id,
                        source=entry["source"],
                        stream=entry["stream"],
                        position=position,
                        field=field,
                        reason=reason,
                        key_id=key_id,
                        payload_enc=cipher.encrypt(str(entry["raw"]), record_id=entry_id, field="quarantine"),
                        received_at=now(),
                    )
                )
                added += 1
                touched.append(entry_id)
            work.touch(touched)
            if added < len(entries):
                work.detail = f"quarantined={added} already quarantined={len(entries) - added}"
            return added

    def quarantine_entries(
        self, ctx: AccessContext, *, source: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self.access(ctx, action="read", resource="quarantine", fields=("record_id",)) as work:
            query = select(
                t.quarantine.c.id,
                t.quarantine.c.source,
                t.quarantine.c.stream,
                t.quarantine.c.position,
                t.quarantine.c.field,
                t.quarantine.c.reason,
                t.quarantine.c.received_at,
                t.quarantine.c.status,
            ).order_by(t.quarantine.c.received_at, t.quarantine.c.position)
            if source:
                query = query.where(t.quarantine.c.source == source)
            if status:
                query = query.where(t.quarantine.c.status == status)
            rows = [dict(r._mapping) for r in work.connection.execute(query.limit(limit))]
            work.touch(r["id"] for r in rows)
            return rows

    def quarantine_payload(self, ctx: AccessContext, entry_id: str) -> tuple[dict[str, Any], str]:
        """The entry and its raw content (decrypted in memory), for show and replay."""
        from cdp._exceptions import NotFound

        with self.access(ctx, action="read", resource="quarantine", fields=("record_id",)) as work:
            row = work.connection.execute(select(t.quarantine).where(t.quarantine.c.id == entry_id)).first()
            if row is None:
                raise NotFound(f"no quarantine entry {entry_id}")
            work.touch([entry_id])
            raw = self.cipher(work.connection, row.key_id).decrypt(
                row.payload_enc, record_id=entry_id, field="quarantine"
            )
            return dict(row._mapping), raw

    def mark_replayed(self, ctx: AccessContext, entry_ids: Sequence[str]) -> None:
        with self.access(ctx, action="write", resource="quarantine", fields=("record_id",)) as work:
            for entry_id in entry_ids:
                work.connection.execute(
                    update(t.quarantine)
                    .where(t.quarantine.c.id == entry_id)
                    .values(status="replayed", replayed_at=now())
                )
            work.touch(entry_ids)

    # -- connector state and file idempotency ----------------------------------------------------

    def file_already_ingested(self, ctx: AccessContext, source: str, digest: str) -> bool:
        with self.access(ctx, action="write", resource="ingested_files") as work:
            row = work.connection.execute(
                select(t.ingested_files.c.id).where(
                    t.ingested_files.c.source == source, t.ingested_files.c.digest == digest
                )
            ).first()
            return row is not None

    def record_file_ingested(self, ctx: AccessContext, source: str, digest: str, location: str) -> None:
        with self.access(ctx, action="write", resource="ingested_files") as work:
            work.connection.execute(
                insert(t.ingested_files).values(source=source, digest=digest, location=location, ingested_at=now())
            )

    def get_cursor(self, ctx: AccessContext, connector: str, stream: str) -> Any:
        with self.access(ctx, action="write", resource="connector_state") as work:
            return work.connection.execute(
                select(t.connector_state.c.cursor).where(
                    t.connector_state.c.connector == connector, t.connector_state.c.stream == stream
                )
            ).scalar()

    def set_cursor(self, ctx: AccessContext, connector: str, stream: str, cursor: Any) -> None:
        with self.access(ctx, action="write", resource="connector_state") as work:
            self._save_cursor(work.connection, connector, stream, cursor)

    def _save_cursor(self, conn: Connection, connector: str, stream: str, cursor: Any) -> None:
        updated = conn.execute(
            update(t.connector_state)
            .where(t.connector_state.c.connector == connector, t.connector_state.c.stream == stream)
            .values(cursor=cursor, updated_at=now())
        )
        if updated.rowcount == 0:
            conn.execute(
                insert(t.connector_state).values(connector=connector, stream=stream, cursor=cursor, updated_at=now())
            )
