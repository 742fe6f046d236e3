"""Data-subject operations: find a person, export all they hold, erase, rectify.

Finding a person goes through blind indexes only (the identifier is
normalised and HMAC'd, never compared in clear). Erasure crypto-shreds the
person's data keys (first re-keying any record of *another* person that
shares a key, so nobody else loses data), deletes their records and events,
removes them from tags and segments, writes suppression entries so their
records cannot silently come back, and queues deletions to destinations that
received them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from cdp._exceptions import Conflict, NotFound
from cdp.access import _tables as t
from cdp.access._analytic_cache import shred_analytic_copies
from cdp.access._core import StoreCore, new_id, now
from cdp.access._profile_rows import RECTIFICATION_SOURCE
from cdp.access._profiles import PROFILE_FIELDS
from cdp.access.context import AccessContext
from cdp.model import IDENTITY_FIELDS

SUBJECT_FIELDS = (*PROFILE_FIELDS, "record_id", "profile_id", "event_name", "consent", "tags", "segments")
SUPPRESSION_KINDS = ("email", "phone", "loyalty_id", "user_id")
ENCRYPTED_COLUMNS = (*(f"{n}_enc" for n in IDENTITY_FIELDS), "payload_enc")


def _chunks(items: list[str], size: int = 900) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SubjectMixin(StoreCore):
    # -- finding ----------------------------------------------------------------------------------

    def find_profiles(self, ctx: AccessContext, *, kind: str, value: str) -> list[str]:
        """Profiles holding a record with this identifier (``value`` already normalised)."""
        with self.access(ctx, action="read", resource="blind_indexes", fields=("profile_id", kind)) as work:
            conn = work.connection
            if kind == "source_id":
                source, _, record = value.partition(":")
                record_ids = list(
                    conn.execute(
                        select(t.records.c.id).where(
                            t.records.c.source == source, t.records.c.source_record_id == record
                        )
                    ).scalars()
                )
            else:
                digest = self.indexer.index(kind, value)
                record_ids = list(
                    conn.execute(
                        select(t.blind_indexes.c.record_id).where(
                            t.blind_indexes.c.kind == kind, t.blind_indexes.c.digest == digest
                        )
                    ).scalars()
                )
            profiles = self._profiles_of(conn, record_ids)
            work.touch(profiles)
            work.detail = f"lookup by {kind}: {len(profiles)} profile(s)"
            return profiles

    def _profiles_of(self, conn: Connection, record_ids: list[str]) -> list[str]:
        found: set[str] = set()
        for chunk in _chunks(record_ids):
            found.update(
                conn.execute(
                    select(t.record_links.c.profile_id).where(
                        t.record_links.c.record_id.in_(chunk), t.record_links.c.unlinked_at.is_(None)
                    )
                ).scalars()
            )
        return sorted(found)

    def _record_rows(self, conn: Connection, profile_id: str) -> list[Any]:
        return list(
            conn.execute(
                select(t.records)
                .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
                .where(t.record_links.c.profile_id == profile_id, t.record_links.c.unlinked_at.is_(None))
                .order_by(t.records.c.occurred_at)
            )
        )

    def _require_profile(self, conn: Connection, profile_id: str) -> Any:
        row = conn.execute(select(t.profiles).where(t.profiles.c.id == profile_id)).first()
        if row is None:
            raise NotFound(f"no profile {profile_id}")
        if row.status == "erased":
            raise Conflict(f"profile {profile_id} has been erased")
        return row

    # -- access / portability ---------------------------------------------------------------------

    def subject_export(self, ctx: AccessContext, profile_id: str) -> dict[str, Any]:
        """Everything held on one person, decrypted, for an access request."""
        with self.access(ctx, action="read", resource="subject", fields=SUBJECT_FIELDS) as work:
            conn = work.connection
            profile = self._require_profile(conn, profile_id)
            rows = self._record_rows(conn, profile_id)
            live = self.load_ciphers(conn, {r.key_id for r in rows})
            records = []
            record_ids = [r.id for r in rows]
            for row in rows:
                readable = row.key_id in live
                item: dict[str, Any] = {
                    "record_id": row.id,
                    "source": row.source,
                    "stream": row.stream,
                    "source_record_id": row.source_record_id,
                    "received_at": row.received_at.isoformat(),
                    "occurred_at": row.occurred_at.isoformat() if row.occurred_at else None,
                    "fields": {},
                }
                for name in IDENTITY_FIELDS:
                    token = getattr(row, f"{name}_enc")
                    if token is not None and readable:
                        item["fields"][name] = self.decrypt_or_none(conn, row.key_id, token, row.id, name)
                for name in ("postcode", "city", "state", "country", "gender"):
                    if getattr(row, name):
                        item["fields"][name] = getattr(row, name)
                if row.payload_enc is not None and readable:
                    payload = self.decrypt_or_none(conn, row.key_id, row.payload_enc, row.id, "payload")
                    item["payload"] = json.loads(payload) if payload else None
                records.append(item)
            events = [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in r._mapping.items()
                    if k not in ("anonymous_key", "user_key")
                }
                for chunk in _chunks(record_ids)
                for r in conn.execute(
                    select(t.events).where(t.events.c.record_id.in_(chunk)).order_by(t.events.c.occurred_at)
                )
            ]
            consents = [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in r._mapping.items()
                    if k != "subject_key"
                }
                for chunk in _chunks(record_ids)
                for r in conn.execute(
                    select(t.consents).where(t.consents.c.record_id.in_(chunk)).order_by(t.consents.c.recorded_at)
                )
            ]
            tags = [
                {
                    "tag": r.tag,
                    "assigned_by": r.assigned_by,
                    "assigned_at": r.assigned_at.isoformat(),
                    "removed_at": r.removed_at.isoformat() if r.removed_at else None,
                }
                for r in conn.execute(select(t.profile_tags).where(t.profile_tags.c.profile_id == profile_id))
            ]
            segments = [
                {
                    "segment": r.segment,
                    "entered_at": r.entered_at.isoformat(),
                    "exited_at": r.exited_at.isoformat() if r.exited_at else None,
                }
                for r in conn.execute(
                    select(t.segment_memberships).where(t.segment_memberships.c.profile_id == profile_id)
                )
            ]
            exports = [
                {
                    "export_id": r.id,
                    "segment": r.segment,
                    "destination": r.destination,
                    "created_at": r.created_at.isoformat(),
                }
                for r in conn.execute(
                    select(t.exports)
                    .join(t.export_members, t.export_members.c.export_id == t.exports.c.id)
                    .where(t.export_members.c.profile_id == profile_id)
                )
            ]
            needles = [profile_id, *record_ids]
            audit_rows = conn.execute(
                select(
                    t.audit_log.c.seq,
                    t.audit_log.c.at,
                    t.audit_log.c.actor,
                    t.audit_log.c.role,
                    t.audit_log.c.purpose,
                    t.audit_log.c.action,
                    t.audit_log.c.resource,
                    t.audit_log.c.decision,
                )
                .where(or_(*(t.audit_log.c.subjects.contains(json.dumps(n)) for n in needles[:200])))
                .order_by(t.audit_log.c.seq)
            )
            work.touch([profile_id])
            return {
                "profile_id": profile_id,
                "status": profile.status,
                "records": records,
                "events": events,
                "consents": consents,
                "tags": tags,
                "segments": segments,
                "exports": exports,
                "access_log": [dict(r._mapping) for r in audit_rows],
            }

    # -- erasure ----------------------------------------------------------------------------------

    def _rekey_foreign_records(self, conn: Connection, key_ids: list[str], keep_out: set[str]) -> int:
        """Give records of other people that share one of these (live) keys a key of their own."""
        moved = 0
        for chunk in _chunks(key_ids):
            foreign = [
                r for r in conn.execute(select(t.records).where(t.records.c.key_id.in_(chunk))) if r.id not in keep_out
            ]
            replacement: dict[str, tuple[str, Any]] = {}
            for row in foreign:
                if row.key_id not in replacement:
                    replacement[row.key_id] = self.create_key(conn)
                new_key, cipher = replacement[row.key_id]
                old = self.cipher(conn, row.key_id)
                values: dict[str, Any] = {"key_id": new_key}
                for column in ENCRYPTED_COLUMNS:
                    token = getattr(row, column)
                    if token is not None:
                        name = "payload" if column == "payload_enc" else column[:-4]
                        values[column] = cipher.encrypt(
                            old.decrypt(token, record_id=row.id, field=name), record_id=row.id, field=name
                        )
                conn.execute(update(t.records).where(t.records.c.id == row.id).values(**values))
                moved += 1
        return moved

    def erase_subject(self, ctx: AccessContext, profile_id: str, *, request_id: str | None = None) -> dict[str, int]:
        """Crypto-shred, delete, unsegment, suppress and queue destination deletions for one person."""
        with self.access(ctx, action="erase", resource="subject", fields=SUBJECT_FIELDS) as work:
            conn = work.connection
            self._require_profile(conn, profile_id)
            rows = self._record_rows(conn, profile_id)
            record_ids = [r.id for r in rows]
            key_ids = sorted({r.key_id for r in rows})
            # A key already destroyed is not re-keyed: the records under it are unreadable already
            # (shredded with it), so there is nothing of theirs to keep.
            live = sorted(self.load_ciphers(conn, key_ids))
            rekeyed = self._rekey_foreign_records(conn, live, set(record_ids))
            suppress: set[tuple[str, str]] = set()
            for chunk in _chunks(record_ids):
                suppress.update(
                    (kind, digest)
                    for kind, digest in conn.execute(
                        select(t.blind_indexes.c.kind, t.blind_indexes.c.digest).where(
                            t.blind_indexes.c.record_id.in_(chunk), t.blind_indexes.c.kind.in_(SUPPRESSION_KINDS)
                        )
                    )
                )
            stamp = now()
            if suppress:
                conn.execute(
                    insert(t.suppressions),
                    [
                        {"kind": k, "digest": d, "request_id": request_id, "created_at": stamp}
                        for k, d in sorted(suppress)
                    ],
                )
            shredded = self.shred_keys(conn, key_ids)
            deleted_events = 0
            for chunk in _chunks(record_ids):
                deleted_events += conn.execute(delete(t.events).where(t.events.c.record_id.in_(chunk))).rowcount or 0
                conn.execute(delete(t.blind_indexes).where(t.blind_indexes.c.record_id.in_(chunk)))
                conn.execute(delete(t.consents).where(t.consents.c.record_id.in_(chunk)))
                conn.execute(delete(t.record_links).where(t.record_links.c.record_id.in_(chunk)))
                conn.execute(
                    delete(t.match_evidence).where(
                        or_(t.match_evidence.c.record_a.in_(chunk), t.match_evidence.c.record_b.in_(chunk))
                    )
                )
                conn.execute(delete(t.records).where(t.records.c.id.in_(chunk)))
            conn.execute(delete(t.record_links).where(t.record_links.c.profile_id == profile_id))
            # Derived copies (event blocks, birth-year cache): their keys destroyed, so backups' copies go too.
            shred_analytic_copies(self, conn)
            conn.execute(
                update(t.segment_memberships)
                .where(t.segment_memberships.c.profile_id == profile_id, t.segment_memberships.c.exited_at.is_(None))
                .values(exited_at=stamp)
            )
            conn.execute(
                update(t.profile_tags)
                .where(t.profile_tags.c.profile_id == profile_id, t.profile_tags.c.removed_at.is_(None))
                .values(removed_at=stamp)
            )
            destinations = conn.execute(
                select(t.exports.c.id, t.exports.c.destination)
                .join(t.export_members, t.export_members.c.export_id == t.exports.c.id)
                .where(t.export_members.c.profile_id == profile_id)
            ).all()
            if destinations:
                conn.execute(
                    insert(t.destination_deletions),
                    [
                        {
                            "destination": d,
                            "export_id": x,
                            "profile_id": profile_id,
                            "request_id": request_id,
                            "status": "queued",
                            "created_at": stamp,
                        }
                        for x, d in destinations
                    ],
                )
            conn.execute(
                update(t.profiles).where(t.profiles.c.id == profile_id).values(status="erased", updated_at=stamp)
            )
            work.touch([profile_id])
            outcome = {
                "records_deleted": len(record_ids),
                "events_deleted": deleted_events,
                "keys_shredded": shredded,
                "records_rekeyed": rekeyed,
                "suppression_entries": len(suppress),
                "destination_deletions": len(destinations),
            }
            work.detail = " ".join(f"{k}={v}" for k, v in outcome.items())
            ledger = {
                "at": stamp.isoformat(),
                "request_id": request_id,
                "profile_id": profile_id,
                "records": record_ids,
                "suppress": sorted([k, d] for k, d in suppress),
            }
        # Kept outside the database (pseudonymous ids and digests only), so erasures can be
        # replayed after a restore from a backup taken before them.
        self._append_erasure_ledger(ledger)
        return outcome

    @property
    def erasure_ledger(self) -> Path:
        return self.settings.data_dir / "erasure-ledger.jsonl"

    def _append_erasure_ledger(self, entry: dict[str, Any]) -> None:
        path = self.erasure_ledger
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def replay_erasures(self, ctx: AccessContext) -> dict[str, int]:
        """Re-apply every erasure in the ledger (after restoring the database from a backup)."""
        if not self.erasure_ledger.is_file():
            return {"entries": 0, "profiles_erased_again": 0, "records_deleted": 0}
        entries = [
            json.loads(line) for line in self.erasure_ledger.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        with self.access(ctx, action="erase", resource="subject", fields=("record_id", "profile_id")) as work:
            conn = work.connection
            again = deleted = 0
            stamp = now()
            known = {(k, d) for k, d in conn.execute(select(t.suppressions.c.kind, t.suppressions.c.digest))}
            for entry in entries:
                records = [r for r in entry["records"] if isinstance(r, str)]
                for chunk in _chunks(records):
                    for table in (t.events, t.blind_indexes, t.consents, t.record_links):
                        conn.execute(delete(table).where(table.c.record_id.in_(chunk)))
                    deleted += conn.execute(delete(t.records).where(t.records.c.id.in_(chunk))).rowcount or 0
                shred_analytic_copies(self, conn)  # copies restored with the backup go again
                missing = [(k, d) for k, d in entry["suppress"] if (k, d) not in known]
                if missing:
                    conn.execute(
                        insert(t.suppressions),
                        [
                            {"kind": k, "digest": d, "request_id": entry.get("request_id"), "created_at": stamp}
                            for k, d in missing
                        ],
                    )
                    known.update(missing)
                restored = conn.execute(
                    update(t.profiles)
                    .where(t.profiles.c.id == entry["profile_id"], t.profiles.c.status != "erased")
                    .values(status="erased")
                )
                again += restored.rowcount or 0
                work.touch([entry["profile_id"]])
            outcome = {"entries": len(entries), "profiles_erased_again": again, "records_deleted": deleted}
            work.detail = " ".join(f"{k}={v}" for k, v in outcome.items())
            return outcome

    # -- rectification, restriction ---------------------------------------------------------------

    def rectify(self, ctx: AccessContext, profile_id: str, corrections: Mapping[str, str], *, request_id: str) -> str:
        """Store corrected values as a record that wins over every source value."""
        fields = [f for f in corrections if f in (*IDENTITY_FIELDS, "postcode", "city", "state", "country", "gender")]
        with self.access(ctx, action="write", resource="subject", fields=(*fields, "profile_id")) as work:
            conn = work.connection
            self._require_profile(conn, profile_id)
            rows = self._record_rows(conn, profile_id)
            if not rows:
                raise NotFound(f"profile {profile_id} has no records")
            # The corrections go under the person's first key still alive; if every key of theirs
            # was crypto-shredded, under a new one (what they send now is new data).
            live = self.load_ciphers(conn, {r.key_id for r in rows})
            first_live = next((r.key_id for r in rows if r.key_id in live), None)
            key_id, cipher = (
                self.create_key(conn) if first_live is None else (first_live, self.cipher(conn, first_live))
            )
            record_id = new_id("r")
            stamp = now()
            values: dict[str, Any] = {
                "id": record_id,
                "source": RECTIFICATION_SOURCE,
                "stream": "dsr",
                "source_record_id": request_id,
                "idempotency_key": new_id("rect"),
                "received_at": stamp,
                "occurred_at": stamp,
                "key_id": key_id,
                "kind": "identity",
                "payload_enc": cipher.encrypt(
                    json.dumps({"request": request_id, "fields": sorted(fields)}), record_id=record_id, field="payload"
                ),
            }
            for name in fields:
                if name in IDENTITY_FIELDS:
                    values[f"{name}_enc"] = cipher.encrypt(corrections[name], record_id=record_id, field=name)
                else:
                    values[name] = corrections[name]
            exists = conn.execute(select(t.sources.c.name).where(t.sources.c.name == RECTIFICATION_SOURCE)).first()
            if exists is None:
                conn.execute(insert(t.sources).values(name=RECTIFICATION_SOURCE, kind="dsr", created_at=stamp))
            conn.execute(insert(t.records).values(**values))
            conn.execute(
                insert(t.record_links).values(
                    record_id=record_id, profile_id=profile_id, linked_at=stamp, reason=f"rectification {request_id}"
                )
            )
            work.touch([profile_id])
            return record_id

    def set_profile_status(self, ctx: AccessContext, profile_id: str, status: str) -> None:
        """``restricted`` keeps the data but stops processing; ``active`` lifts it."""
        with self.access(ctx, action="write", resource="profiles", fields=("profile_id",)) as work:
            self._require_profile(work.connection, profile_id)
            work.connection.execute(
                update(t.profiles).where(t.profiles.c.id == profile_id).values(status=status, updated_at=now())
            )
            work.touch([profile_id])
            work.detail = f"status={status}"
