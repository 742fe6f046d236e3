"""Writing incoming records: encryption, blind indexes, idempotency, quarantine.

A record's direct identifiers are encrypted with its person's data key before
they reach the database. The person's key is found through the blind indexes
of strong identifiers (email, loyalty id, user id, anonymous id) already
stored, so one person's records share one key and erasure can shred it;
otherwise a new key is made. Re-sending a record (same source and record id,
or same message id) is a no-op.

This is the ingestion hot path, so rows are inserted through one compiled
statement per table and the driver's ``executemany`` (no per-row SQLAlchemy
parameter processing), several batches can share one transaction
(:meth:`IngestMixin.ingest_many`, used by the HTTP endpoint's group commit),
and a connector's cursor can be saved in the batch's own transaction, so a
crash can never separate "stored" from "read up to here".
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cdp.access import _tables as t
from cdp.access._bulk import bulk_insert
from cdp.access._core import StoreCore, new_id, now
from cdp.access.context import AccessContext
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS, IncomingRecord, IngestOutcome, strip_sensitive

KEY_SHARING_KINDS = ("email", "loyalty_id", "user_id", "anonymous_id")
INGEST_FIELDS = (*IDENTITY_FIELDS, *CLEAR_FIELDS, "anonymous_id", "event_name", "revenue", "consent")
CHUNK = 900  # bound parameters per IN (...) query, under SQLite's historical limit of 999
DUPLICATE = ""  # per-record outcome of a record already stored
SUPPRESSED = "-"  # per-record outcome of a record of an erased person

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, sort_keys=True).encode

RECORD_COLUMNS = (
    "id",
    "source",
    "stream",
    "source_record_id",
    "idempotency_key",
    "received_at",
    "occurred_at",
    "key_id",
    "kind",
    "payload_enc",
    *(f"{name}_enc" for name in IDENTITY_FIELDS),
    *CLEAR_FIELDS,
)
EVENT_COLUMNS = (
    "id",
    "record_id",
    "source",
    "event_type",
    "event_name",
    "occurred_at",
    "anonymous_key",
    "user_key",
    "profile_id",
    "revenue",
    "currency",
    "channel",
    "store_id",
    "category",
    "properties",
)
CONSENT_COLUMNS = (
    "record_id",
    "subject_key",
    "purpose",
    "status",
    "basis",
    "source",
    "notice_version",
    "jurisdiction",
    "recorded_at",
    "evidence",
)
INDEX_COLUMNS = ("record_id", "kind", "digest")
KEY_COLUMNS = ("id", "kek_id", "created_at")


def _json(value: Any) -> str:
    return _ENCODE(value)


def payload_json(payload: Mapping[str, Any], sensitive: frozenset[str]) -> str:
    """The stored (then encrypted) form of a record's payload: JSON without special-category keys."""
    return _ENCODE(strip_sensitive(payload, sensitive))


def record_digests(record: IncomingRecord, index: Callable[[str, str], str]) -> dict[str, str]:
    """The blind indexes of a record's match keys and anonymous id, by kind."""
    digests = {kind: index(kind, value) for kind, value in record.match_keys.items() if value}
    if record.anonymous_id:
        digests["anonymous_id"] = index("anonymous_id", record.anonymous_id)
    return digests


def prepare(
    record: IncomingRecord, sensitive: frozenset[str], index: Callable[[str, str], str]
) -> tuple[str, dict[str, str]]:
    """What :meth:`IngestMixin.ingest` computes for a record before it needs the database: the
    payload's stored JSON and the record's blind indexes. An ingest worker process runs this
    (see ``cdp.connectors._worker``) and hands the result over with the record."""
    return payload_json(record.payload, sensitive), record_digests(record, index)


Prepared = tuple[str, dict[str, str]]  # (payload JSON, blind indexes by kind), see prepare()


def record_ids(count: int) -> list[str]:
    """New record ids, time-ordered (12 hex digits of milliseconds, then 48 random bits).

    Same shape as ``new_id("r")``; the time prefix makes primary-key inserts
    append to the B-tree instead of landing on random pages, which keeps large
    tables fast to write.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"[-12:]
    tails = os.urandom(6 * count).hex()
    return [f"r_{stamp}{tails[i * 12 : i * 12 + 12]}" for i in range(count)]


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


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

    def _existing_keys(self, connection: Connection, digests: set[str]) -> dict[str, str]:
        # Two index lookups instead of one three-table join: a join's plan depends on table
        # statistics, and right after a bulk load (or with autovacuum off) PostgreSQL planned it
        # as a nested loop over every person's key, seconds per batch.
        holders: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(digests)):
            rows = connection.execute(
                select(t.blind_indexes.c.digest, t.blind_indexes.c.record_id).where(
                    t.blind_indexes.c.kind.in_(KEY_SHARING_KINDS), t.blind_indexes.c.digest.in_(chunk)
                )
            )
            for digest, record_id in rows.all():  # all(): one fetchall, not a fetchone per row
                holders.setdefault(digest, []).append(record_id)
        key_of: dict[str, str] = {}
        for chunk in _chunks(sorted({r for records in holders.values() for r in records})):
            rows = connection.execute(
                select(t.records.c.id, t.records.c.key_id)
                .join(t.subject_keys, t.subject_keys.c.id == t.records.c.key_id)
                .where(t.records.c.id.in_(chunk), t.subject_keys.c.destroyed_at.is_(None))
            )
            key_of.update((record_id, key_id) for record_id, key_id in rows.all())
        found: dict[str, str] = {}
        for digest in sorted(holders):
            key = next((key_of[r] for r in sorted(holders[digest]) if r in key_of), None)
            if key is not None:
                found[digest] = key
        return found

    def ingest(
        self,
        ctx: AccessContext,
        batch: Sequence[IncomingRecord],
        *,
        cursor: tuple[str, str, Any] | None = None,
        prepared: Sequence[Prepared] | None = None,
    ) -> IngestOutcome:
        """Store a batch in one transaction. Returns accepted and duplicate counts.

        ``cursor`` (connector, stream, state), when given, is saved in the same
        transaction: the batch and "read up to here" commit together or not at all.
        ``prepared``, when given, is :func:`prepare` of each record (in order), made with this
        store's policy and blind indexer; the records' own payloads are then not read.
        """
        return self.ingest_many(ctx, [batch], cursor=cursor, prepared=prepared)[0]

    def ingest_many(
        self,
        ctx: AccessContext,
        batches: Sequence[Sequence[IncomingRecord]],
        *,
        cursor: tuple[str, str, Any] | None = None,
        prepared: Sequence[Prepared] | None = None,
    ) -> list[IngestOutcome]:
        """Store several batches in one transaction (group commit); one outcome per batch.

        ``prepared`` (see :meth:`ingest`) covers all the batches' records, in order.
        """
        flat = [record for batch in batches for record in batch]
        if prepared is not None and len(prepared) != len(flat):
            raise ValueError(f"{len(prepared)} prepared records for {len(flat)} records")
        with self.access(ctx, action="write", resource="records", fields=INGEST_FIELDS) as work:
            ids = self._write(work.connection, flat, prepared)
            if cursor is not None:
                self._save_cursor(work.connection, *cursor)
            outcomes: list[IngestOutcome] = []
            start = 0
            for batch in batches:
                part = ids[start : start + len(batch)]
                start += len(batch)
                stored = tuple(i for i in part if i not in (DUPLICATE, SUPPRESSED))
                suppressed = sum(1 for i in part if i == SUPPRESSED)
                outcomes.append(IngestOutcome(len(stored), len(part) - len(stored) - suppressed, stored, suppressed))
            new_ids = [i for i in ids if i not in (DUPLICATE, SUPPRESSED)]
            work.touch(new_ids)
            duplicates = sum(o.duplicates for o in outcomes)
            suppressed_total = sum(o.suppressed for o in outcomes)
            work.detail = f"accepted={len(new_ids)} duplicates={duplicates} suppressed={suppressed_total}"
            if cursor is not None:
                work.detail += " cursor saved"
        self._known_sources().update(r.source for batch in batches for r in batch)
        self.note_bulk_write(sum(o.accepted for o in outcomes))
        return outcomes

    def _fresh(self, connection: Connection, batch: Sequence[IncomingRecord]) -> tuple[list[str], list[int]]:
        """Idempotency keys of the batch and the positions of the records not stored yet."""
        keys = [record.idempotency_key for record in batch]
        seen: set[str] = set()
        for chunk in _chunks(keys):
            seen.update(
                connection.execute(select(t.records.c.idempotency_key).where(t.records.c.idempotency_key.in_(chunk)))
                .scalars()
                .all()
            )
        fresh: list[int] = []
        for position, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                fresh.append(position)
        return keys, fresh

    def _write(
        self, conn: Connection, batch: Sequence[IncomingRecord], prepared: Sequence[Prepared] | None = None
    ) -> list[str]:
        """Store ``batch``; per record, its new id, or DUPLICATE, or SUPPRESSED."""
        out = [DUPLICATE] * len(batch)
        if not batch:
            return out
        self._ensure_sources(conn, {r.source for r in batch})
        keys, fresh = self._fresh(conn, batch)
        if prepared is not None:
            digests_of = {i: prepared[i][1] for i in fresh}
        else:
            index = self.indexer.index
            digests_of = {i: record_digests(batch[i], index) for i in fresh}
        suppressed = self._suppressed(conn, {d for ds in digests_of.values() for d in ds.values()})
        if suppressed:
            for i in [i for i in fresh if not suppressed.isdisjoint(digests_of[i].values())]:
                out[i] = SUPPRESSED
            fresh = [i for i in fresh if out[i] != SUPPRESSED]
        sharing = {d for i in fresh for k, d in digests_of[i].items() if k in KEY_SHARING_KINDS}
        existing = self._existing_keys(conn, sharing)
        self.load_ciphers(conn, set(existing.values()))
        # Which key each record uses: an existing person's, else a new one (shared within the batch).
        key_for_digest: dict[str, str | int] = dict(existing)
        slots: list[str | int] = []
        new_keys = 0
        for i in fresh:
            digests = digests_of[i]
            slot = next(
                (key_for_digest[d] for k, d in digests.items() if k in KEY_SHARING_KINDS and d in key_for_digest), None
            )
            if slot is None:
                slot, new_keys = new_keys, new_keys + 1
            for kind, digest in digests.items():
                if kind in KEY_SHARING_KINDS:
                    key_for_digest.setdefault(digest, slot)
            slots.append(slot)
        created = self.create_keys(new_keys)
        record_rows: list[tuple[Any, ...]] = []
        index_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        consent_rows: list[tuple[Any, ...]] = []
        received = now()
        jurisdictions: dict[tuple[str | None, str | None], str | None] = {}
        sensitive = self.policy.policy.sensitive_keys
        for i, slot, record_id in zip(fresh, slots, record_ids(len(fresh)), strict=True):
            record = batch[i]
            digests = digests_of[i]
            out[i] = record_id
            if isinstance(slot, int):
                key_id, cipher, _ = created[slot]
            else:
                key_id, cipher = slot, self.cipher(conn, slot)
            index_rows.extend((record_id, kind, digest) for kind, digest in digests.items())
            identity = record.identity
            encrypt = cipher.encrypt
            record_rows.append(
                (
                    record_id,
                    record.source,
                    record.stream,
                    record.source_record_id[:200],
                    keys[i],
                    received,
                    record.occurred_at,
                    key_id,
                    record.kind,
                    encrypt(
                        prepared[i][0] if prepared is not None else payload_json(record.payload, sensitive),
                        record_id=record_id,
                        field="payload",
                    ),
                    *(
                        encrypt(value, record_id=record_id, field=name) if (value := identity.get(name)) else None
                        for name in IDENTITY_FIELDS
                    ),
                    *(identity.get(name) or None for name in CLEAR_FIELDS),
                )
            )
            anonymous_key = digests.get("anonymous_id")
            user_key = digests.get("user_id")
            for position, event in enumerate(record.events):
                event_rows.append(
                    (
                        f"{record_id}.{position}",
                        record_id,
                        record.source,
                        event.event_type,
                        event.event_name,
                        event.occurred_at,
                        anonymous_key,
                        user_key,
                        None,
                        event.revenue,
                        event.currency,
                        event.channel,
                        event.store_id,
                        event.category,
                        event.properties or None,
                    )
                )
            if record.consents:
                subject_key = next((digests[k] for k in KEY_SHARING_KINDS if k in digests), None)
                country = identity.get("country")
                region = (country, identity.get("state"))
                if region not in jurisdictions:
                    jurisdictions[region] = self.policy.policy.jurisdiction_of(*region)
                for consent in record.consents:
                    consent_rows.append(
                        (
                            record_id,
                            subject_key,
                            consent.purpose,
                            consent.status,
                            consent.basis,
                            consent.source or record.source,
                            consent.notice_version,
                            jurisdictions[region],
                            record.occurred_at or received,
                            self.hash_evidence(consent.evidence),
                        )
                    )
        bulk_insert(conn, t.subject_keys, KEY_COLUMNS).run(conn, [(k, kek, received) for k, _, kek in created])
        bulk_insert(conn, t.records, RECORD_COLUMNS).run(conn, record_rows)
        bulk_insert(conn, t.blind_indexes, INDEX_COLUMNS).run(conn, index_rows)
        bulk_insert(conn, t.events, EVENT_COLUMNS).run(conn, event_rows)
        bulk_insert(conn, t.consents, CONSENT_COLUMNS).run(conn, consent_rows)
        return out

    def _suppressed(self, connection: Connection, digests: set[str]) -> set[str]:
        """Digests of identifiers that belong to erased people (suppression list)."""
        found: set[str] = set()
        for chunk in _chunks(sorted(digests)):
            found.update(
                connection.execute(select(t.suppressions.c.digest).where(t.suppressions.c.digest.in_(chunk)))
                .scalars()
                .all()
            )
        return found

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
