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

import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, Dialect, bindparam, insert, select, update

from cdp.access import _tables as t
from cdp.access._bulk import bulk_insert, compiled_insert
from cdp.access._core import StoreCore, new_id, now
from cdp.access.context import AccessContext
from cdp.crypto.fields import FieldCipher
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
    if sensitive and _plain_keys(sensitive):
        # Most payloads hold no special-category key at all: then stripping changes nothing, and
        # the JSON (whose lowered text contains every key, lowered, of every nesting level) shows it
        # without walking the payload. Exact for keys that JSON writes as they are (checked).
        text = _ENCODE(payload)
        lowered = text.lower()
        if not any(key in lowered for key in sensitive):
            return text
    return _ENCODE(strip_sensitive(payload, sensitive))


@functools.cache
def _plain_keys(keys: frozenset[str]) -> bool:
    """Whether every key is printable ASCII that JSON writes unescaped (then a lowered JSON text holds
    it wherever a key lowering to it does; non-ASCII lowering can depend on context)."""
    return all(key.isascii() and key.isprintable() and '"' not in key and "\\" not in key for key in keys)


def record_digests(record: IncomingRecord, index: Callable[[str, str], str]) -> dict[str, str]:
    """The blind indexes of a record's match keys and anonymous id, by kind."""
    digests = {kind: index(kind, value) for kind, value in record.match_keys.items() if value}
    if record.anonymous_id:
        digests["anonymous_id"] = index("anonymous_id", record.anonymous_id)
    return digests


# A record made ready for storing (RowMaker.make): plain tuples and text only, so a batch of them
# pickles and unpickles in a fraction of the time the record objects took. Positions:
READY_ID, READY_KEY = 0, 4  # record id (made when prepared), idempotency key
READY_OCCURRED, READY_KIND, READY_PAYLOAD, READY_IDENTITY, READY_CLEAR = 5, 6, 7, 8, 9
READY_SHARING, READY_INDEXES, READY_EVENTS, READY_CONSENTS = 10, 11, 12, 13
# (id, source, stream, source record id, idempotency key, occurred_at, kind, payload JSON,
#  identity values in IDENTITY_FIELDS order or None when it has none, clear values in CLEAR_FIELDS order,
#  digests of the key-sharing identifiers, blind-index rows, event rows, consent rows)
Ready = tuple[Any, ...]
_NO_IDENTITY = (None,) * len(IDENTITY_FIELDS)


class RowMaker:
    """Turns normalised records into :data:`Ready` tuples: the rows of ``blind_indexes``, ``events``
    and ``consents`` complete, the ``records`` row without what needs the person's key.

    Why this is separate from storing: none of it needs the database, so an ingest worker process
    (``cdp.connectors._worker``) does it while the storing process writes the previous batch, and
    sends the storing process only tuples. Given a SQLite ``dialect``, it also turns the event rows'
    and the records' ``occurred_at`` values into the driver's form (DATETIME text, JSON text), which
    the storing process then inserts as they are (:attr:`converted`). On other databases those
    values stay Python objects and are converted when inserted, as before.
    """

    def __init__(
        self,
        sensitive: frozenset[str],
        index: Callable[[str, str], str],
        jurisdiction_of: Callable[[str | None, str | None], str | None],
        hash_evidence: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        dialect: Dialect | None = None,
    ) -> None:
        self.sensitive = sensitive
        self.index = index
        self.jurisdiction_of = jurisdiction_of
        self.hash_evidence = hash_evidence
        self.converted = dialect is not None and dialect.name == "sqlite"
        self._event_row: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        self._occurred: Callable[[Any], Any] | None = None
        if dialect is not None and self.converted:
            self._event_row = compiled_insert(dialect, t.events, EVENT_COLUMNS).convert_row
            self._occurred = compiled_insert(dialect, t.records, RECORD_COLUMNS).processor("occurred_at")
        self._jurisdictions: dict[tuple[str | None, str | None], str | None] = {}

    def make(self, records: Sequence[IncomingRecord]) -> list[Ready]:
        index = self.index
        sensitive = self.sensitive
        event_row = self._event_row
        occurred_text = self._occurred
        out: list[Ready] = []
        for record, record_id in zip(records, record_ids(len(records)), strict=True):
            digests = record_digests(record, index)
            identity = record.identity
            values = tuple(identity.get(name) or None for name in IDENTITY_FIELDS)
            has_identity = any(values)
            source = record.source
            anonymous_key = digests.get("anonymous_id")
            user_key = digests.get("user_id")
            events: list[tuple[Any, ...]] = []
            for position, event in enumerate(record.events):
                row = (
                    f"{record_id}.{position}",
                    record_id,
                    source,
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
                events.append(event_row(row) if event_row is not None else row)
            consents: list[tuple[Any, ...]] = []
            if record.consents:
                subject_key = next((digests[k] for k in KEY_SHARING_KINDS if k in digests), None)
                region = (identity.get("country"), identity.get("state"))
                if region not in self._jurisdictions:
                    self._jurisdictions[region] = self.jurisdiction_of(*region)
                for consent in record.consents:
                    consent_row = (
                        record_id,
                        subject_key,
                        consent.purpose,
                        consent.status,
                        consent.basis,
                        consent.source or source,
                        consent.notice_version,
                        self._jurisdictions[region],
                        record.occurred_at,  # None: the time it is stored (filled in by the storing process)
                        self.hash_evidence(consent.evidence),
                    )
                    consents.append(consent_row)  # few: converted when inserted
            occurred = record.occurred_at
            out.append(
                (
                    record_id,
                    source,
                    record.stream,
                    record.source_record_id[:200],
                    record.idempotency_key,
                    occurred_text(occurred) if occurred_text is not None and occurred is not None else occurred,
                    "identity" if has_identity else "event",
                    payload_json(record.payload, sensitive),
                    values if has_identity else None,
                    tuple(identity.get(name) or None for name in CLEAR_FIELDS),
                    tuple(d for k, d in digests.items() if k in KEY_SHARING_KINDS),
                    tuple((record_id, kind, digest) for kind, digest in digests.items()),
                    events,
                    consents,
                )
            )
        return out


def record_ids(count: int) -> list[str]:
    """New record ids, time-ordered (12 hex digits of milliseconds, then 48 random bits).

    Same shape as ``new_id("r")``; the time prefix makes primary-key inserts
    append to the B-tree instead of landing on random pages, which keeps large
    tables fast to write.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"[-12:]
    tails = os.urandom(6 * count).hex()
    return [f"r_{stamp}{tails[i * 12 : i * 12 + 12]}" for i in range(count)]


# The look-ups of the hot path, built once: an IN (...) of a literal list is coerced value by value
# on every call; an expanding parameter is only rendered (the compiled form is cached).


def _values() -> BindParameter[Any]:
    return bindparam("values", expanding=True)


_STORED_KEYS = select(t.records.c.idempotency_key).where(t.records.c.idempotency_key.in_(_values()))
_SUPPRESSED = select(t.suppressions.c.digest).where(t.suppressions.c.digest.in_(_values()))
_HOLDERS = select(t.blind_indexes.c.digest, t.blind_indexes.c.record_id).where(
    t.blind_indexes.c.kind.in_(KEY_SHARING_KINDS), t.blind_indexes.c.digest.in_(_values())
)
_LIVE_KEYS = (
    select(t.records.c.id, t.records.c.key_id)
    .join(t.subject_keys, t.subject_keys.c.id == t.records.c.key_id)
    .where(t.records.c.id.in_(_values()), t.subject_keys.c.destroyed_at.is_(None))
)


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
            rows = connection.execute(_HOLDERS, {"values": chunk})
            for digest, record_id in rows.all():  # all(): one fetchall, not a fetchone per row
                holders.setdefault(digest, []).append(record_id)
        key_of: dict[str, str] = {}
        for chunk in _chunks(sorted({r for records in holders.values() for r in records})):
            rows = connection.execute(_LIVE_KEYS, {"values": chunk})
            key_of.update((record_id, key_id) for record_id, key_id in rows.all())
        found: dict[str, str] = {}
        for digest in sorted(holders):
            key = next((key_of[r] for r in sorted(holders[digest]) if r in key_of), None)
            if key is not None:
                found[digest] = key
        return found

    def row_maker(self, dialect: Dialect | None = None) -> RowMaker:
        """A :class:`RowMaker` with this store's policy, blind indexer and evidence hashing. Pass the
        store's dialect only where the rows are made in another process (the worker), see RowMaker."""
        policy = self.policy.policy
        return RowMaker(policy.sensitive_keys, self.indexer.index, policy.jurisdiction_of, self.hash_evidence, dialect)

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
        self._known_sources().update(r[1] for r in flat)
        self.note_bulk_write(sum(o.accepted for o in outcomes))
        return outcomes

    def _fresh(self, connection: Connection, batch: Sequence[Ready]) -> list[int]:
        """Positions of the records not stored yet (nor earlier in the batch)."""
        keys = [record[READY_KEY] for record in batch]
        seen: set[str] = set()
        for chunk in _chunks(keys):
            seen.update(connection.execute(_STORED_KEYS, {"values": chunk}).scalars().all())
        fresh: list[int] = []
        for position, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
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
        existing = self._existing_keys(conn, {d for i in fresh for d in batch[i][READY_SHARING]})
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
        if converted:  # the rest of each row is in the driver's form already: so must this be
            process = records_insert.processor("received_at")
            stamp = process(received) if process is not None else received
        record_rows: list[tuple[Any, ...]] = []
        index_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        consent_rows: list[tuple[Any, ...]] = []
        ciphers: dict[str, FieldCipher] = {}
        for i, slot in zip(fresh, slots, strict=True):
            ready = batch[i]
            record_id = ready[READY_ID]
            out[i] = record_id
            if isinstance(slot, int):
                key_id, cipher, _ = created[slot]
            else:
                key_id = slot
                if key_id not in ciphers:
                    ciphers[key_id] = self.cipher(conn, key_id)
                cipher = ciphers[key_id]
            encrypt = cipher.encrypt
            identity = ready[READY_IDENTITY]
            record_rows.append(
                (
                    *ready[:5],
                    stamp,
                    ready[READY_OCCURRED],
                    key_id,
                    ready[READY_KIND],
                    encrypt(ready[READY_PAYLOAD], record_id=record_id, field="payload"),
                    *(
                        _NO_IDENTITY
                        if identity is None
                        else (
                            encrypt(value, record_id=record_id, field=name) if value else None
                            for name, value in zip(IDENTITY_FIELDS, identity, strict=True)
                        )
                    ),
                    *ready[READY_CLEAR],
                )
            )
            index_rows.extend(ready[READY_INDEXES])
            event_rows.extend(ready[READY_EVENTS])
            for consent in ready[READY_CONSENTS]:
                consent_rows.append(consent if consent[8] is not None else (*consent[:8], received, consent[9]))
        bulk_insert(conn, t.subject_keys, KEY_COLUMNS).run(conn, [(k, kek, received) for k, _, kek in created])
        records_insert.run(conn, record_rows, converted=converted)
        bulk_insert(conn, t.blind_indexes, INDEX_COLUMNS).run(conn, index_rows)
        bulk_insert(conn, t.events, EVENT_COLUMNS).run(conn, event_rows, converted=converted)
        bulk_insert(conn, t.consents, CONSENT_COLUMNS).run(conn, consent_rows)
        return out

    def _suppressed(self, connection: Connection, digests: set[str]) -> set[str]:
        """Digests of identifiers that belong to erased people (suppression list)."""
        found: set[str] = set()
        for chunk in _chunks(sorted(digests)):
            found.update(connection.execute(_SUPPRESSED, {"values": chunk}).scalars().all())
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
