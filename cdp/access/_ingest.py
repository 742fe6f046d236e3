"""Writing incoming records: encryption, blind indexes, idempotency, quarantine.

A record's direct identifiers are encrypted with its person's data key before
they reach the database. The person's key is found through the blind indexes
of strong identifiers (email, loyalty id, user id, anonymous id) already
stored, so one person's records share one key and erasure can shred it;
otherwise a new key is made. Re-sending a record (same source and record id,
or same message id) is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cdp.access import _tables as t
from cdp.access._core import StoreCore, new_id, now
from cdp.access.context import AccessContext
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS, IncomingRecord, IngestOutcome

KEY_SHARING_KINDS = ("email", "loyalty_id", "user_id", "anonymous_id")
INGEST_FIELDS = (*IDENTITY_FIELDS, *CLEAR_FIELDS, "anonymous_id", "event_name", "revenue", "consent")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str, sort_keys=True)


class IngestMixin(StoreCore):
    def _ensure_sources(self, connection: Connection, names: set[str]) -> None:
        existing = set(connection.execute(select(t.sources.c.name).where(t.sources.c.name.in_(names))).scalars())
        for name in sorted(names - existing):
            connection.execute(insert(t.sources).values(name=name, kind="connector", created_at=now()))

    def _existing_keys(self, connection: Connection, digests: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        items = sorted(digests)
        for start in range(0, len(items), 900):
            rows = connection.execute(
                select(t.blind_indexes.c.digest, t.records.c.key_id)
                .join(t.records, t.records.c.id == t.blind_indexes.c.record_id)
                .join(t.subject_keys, t.subject_keys.c.id == t.records.c.key_id)
                .where(
                    t.blind_indexes.c.digest.in_(items[start : start + 900]),
                    t.blind_indexes.c.kind.in_(KEY_SHARING_KINDS),
                    t.subject_keys.c.destroyed_at.is_(None),
                )
            )
            for digest, key_id in rows:
                found.setdefault(digest, key_id)
        return found

    def ingest(self, ctx: AccessContext, batch: Sequence[IncomingRecord]) -> IngestOutcome:
        """Store a batch in one transaction. Returns accepted and duplicate counts."""
        with self.access(ctx, action="write", resource="records", fields=INGEST_FIELDS) as work:
            conn = work.connection
            self._ensure_sources(conn, {r.source for r in batch})
            keys = [r.idempotency_key for r in batch]
            seen: set[str] = set()
            for start in range(0, len(keys), 900):
                seen.update(
                    conn.execute(
                        select(t.records.c.idempotency_key).where(
                            t.records.c.idempotency_key.in_(keys[start : start + 900])
                        )
                    ).scalars()
                )
            fresh: list[IncomingRecord] = []
            for record in batch:
                if record.idempotency_key in seen:
                    continue
                seen.add(record.idempotency_key)
                fresh.append(record)
            digests_per_record: list[dict[str, str]] = []
            for record in fresh:
                digests = {kind: self.indexer.index(kind, value) for kind, value in record.match_keys.items() if value}
                if record.anonymous_id:
                    digests["anonymous_id"] = self.indexer.index("anonymous_id", record.anonymous_id)
                digests_per_record.append(digests)
            suppressed_digests = self._suppressed(conn, {d for ds in digests_per_record for d in ds.values()})
            if suppressed_digests:
                kept = [
                    (r, ds)
                    for r, ds in zip(fresh, digests_per_record, strict=True)
                    if not (set(ds.values()) & suppressed_digests)
                ]
                suppressed = len(fresh) - len(kept)
                fresh = [r for r, _ in kept]
                digests_per_record = [ds for _, ds in kept]
            else:
                suppressed = 0
            sharing = {d for ds in digests_per_record for k, d in ds.items() if k in KEY_SHARING_KINDS}
            key_for_digest = self._existing_keys(conn, sharing)
            record_rows: list[dict[str, Any]] = []
            index_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            consent_rows: list[dict[str, Any]] = []
            key_rows: list[dict[str, Any]] = []
            received = now()
            for record, digests in zip(fresh, digests_per_record, strict=True):
                record_id = new_id("r")
                shared = [
                    key_for_digest[d] for k, d in digests.items() if k in KEY_SHARING_KINDS and d in key_for_digest
                ]
                if shared:
                    key_id = shared[0]
                    cipher = self.cipher(conn, key_id)
                else:
                    key_id, cipher = self.create_key(conn, key_rows)
                for kind, digest in digests.items():
                    if kind in KEY_SHARING_KINDS:
                        key_for_digest.setdefault(digest, key_id)
                    index_rows.append({"record_id": record_id, "kind": kind, "digest": digest})
                row: dict[str, Any] = {
                    "id": record_id,
                    "source": record.source,
                    "stream": record.stream,
                    "source_record_id": record.source_record_id[:200],
                    "idempotency_key": record.idempotency_key,
                    "received_at": received,
                    "occurred_at": record.occurred_at,
                    "key_id": key_id,
                    "kind": record.kind,
                    "payload_enc": cipher.encrypt(_json(record.payload), record_id=record_id, field="payload"),
                }
                for name in IDENTITY_FIELDS:
                    value = record.identity.get(name)
                    row[f"{name}_enc"] = cipher.encrypt(value, record_id=record_id, field=name) if value else None
                for name in CLEAR_FIELDS:
                    row[name] = record.identity.get(name) or None
                record_rows.append(row)
                user_key = digests.get("user_id")
                for position, event in enumerate(record.events):
                    event_rows.append(
                        {
                            "id": f"{record_id}.{position}",
                            "record_id": record_id,
                            "source": record.source,
                            "event_type": event.event_type,
                            "event_name": event.event_name,
                            "occurred_at": event.occurred_at,
                            "anonymous_key": digests.get("anonymous_id"),
                            "user_key": user_key,
                            "profile_id": None,
                            "revenue": event.revenue,
                            "currency": event.currency,
                            "channel": event.channel,
                            "store_id": event.store_id,
                            "category": event.category,
                            "properties": event.properties or None,
                        }
                    )
                subject_key = next((digests[k] for k in KEY_SHARING_KINDS if k in digests), None)
                jurisdiction = self.policy.policy.jurisdiction_of(record.identity.get("country"))
                for consent in record.consents:
                    consent_rows.append(
                        {
                            "record_id": record_id,
                            "subject_key": subject_key,
                            "purpose": consent.purpose,
                            "status": consent.status,
                            "basis": consent.basis,
                            "source": consent.source or record.source,
                            "notice_version": consent.notice_version,
                            "jurisdiction": jurisdiction,
                            "recorded_at": record.occurred_at or received,
                            "evidence": consent.evidence or None,
                        }
                    )
            for table, rows in (
                (t.subject_keys, key_rows),
                (t.records, record_rows),
                (t.blind_indexes, index_rows),
                (t.events, event_rows),
                (t.consents, consent_rows),
            ):
                if rows:
                    conn.execute(insert(table), rows)
            work.touch(r["id"] for r in record_rows)
            duplicates = len(batch) - len(fresh) - suppressed
            work.detail = f"accepted={len(fresh)} duplicates={duplicates} suppressed={suppressed}"
            return IngestOutcome(len(fresh), duplicates, tuple(r["id"] for r in record_rows), suppressed)

    def _suppressed(self, connection: Connection, digests: set[str]) -> set[str]:
        """Digests of identifiers that belong to erased people (suppression list)."""
        found: set[str] = set()
        items = sorted(digests)
        for start in range(0, len(items), 900):
            found.update(
                connection.execute(
                    select(t.suppressions.c.digest).where(t.suppressions.c.digest.in_(items[start : start + 900]))
                ).scalars()
            )
        return found

    # -- quarantine -----------------------------------------------------------------------------

    def quarantine(
        self, ctx: AccessContext, *, source: str, stream: str, position: str, field: str | None, reason: str, raw: str
    ) -> bool:
        """Keep a rejected record (encrypted) with the reason. Returns False if already quarantined."""
        with self.access(ctx, action="write", resource="quarantine", fields=("record_id",)) as work:
            conn = work.connection
            exists = conn.execute(
                select(t.quarantine.c.id, t.quarantine.c.status).where(
                    t.quarantine.c.source == source, t.quarantine.c.position == position
                )
            ).first()
            if exists is not None:
                conn.execute(
                    update(t.quarantine)
                    .where(t.quarantine.c.id == exists.id)
                    .values(status="open", reason=reason[:2000], field=field)
                )
                work.detail = "already quarantined"
                return False
            entry_id = new_id("q")
            key_id, cipher = self.create_key(conn)
            conn.execute(
                insert(t.quarantine).values(
                    id=entry_id,
                    source=source,
                    stream=stream,
                    position=position[:500],
                    field=field,
                    reason=reason[:2000],
                    key_id=key_id,
                    payload_enc=cipher.encrypt(raw, record_id=entry_id, field="quarantine"),
                    received_at=now(),
                )
            )
            work.touch([entry_id])
            return True

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
            conn = work.connection
            updated = conn.execute(
                update(t.connector_state)
                .where(t.connector_state.c.connector == connector, t.connector_state.c.stream == stream)
                .values(cursor=cursor, updated_at=now())
            )
            if updated.rowcount == 0:
                conn.execute(
                    insert(t.connector_state).values(
                        connector=connector, stream=stream, cursor=cursor, updated_at=now()
                    )
                )
