"""Identity-resolution reads and writes: features in, stable profile ids out.

The resolver (``cdp.identity``) never touches tables: it asks for the
records' identifiers (decrypted in memory, for the identity-resolution
purpose only) and hands back clusters. Here clusters become profiles whose
ids are stable: a cluster keeps the id of the existing profile it overlaps
most, and every change of a record's profile is kept as link history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from cdp.access import _tables as t
from cdp.access._core import StoreCore, new_id, now
from cdp.access.context import AccessContext
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS

MATCH_KIND = "match"
"""Blind-index kind of the incremental matcher's candidate keys (see ``_matching``)."""

FEATURE_FIELDS = (*IDENTITY_FIELDS, *CLEAR_FIELDS, "anonymous_id", "record_id", "profile_id")


def link_rows(
    pairs: Iterable[tuple[str, str]], stamp: datetime, reasons: Mapping[str, str], method: str, run_id: str
) -> list[dict[str, Any]]:
    """``record_links`` rows linking each (record, profile) pair, with its reason (or the method)."""
    return [
        {"record_id": r, "profile_id": p, "linked_at": stamp, "reason": reasons.get(r, method)[:200], "run_id": run_id}
        for r, p in pairs
    ]


@dataclass(frozen=True)
class ResolutionStats:
    records: int
    profiles: int
    created: int
    kept: int
    retired: int
    relinked: int
    run_id: str


class IdentityMixin(StoreCore):
    def identity_features(
        self,
        ctx: AccessContext,
        *,
        include_identifiers: bool = True,
        record_ids: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Active records with their identifiers (decrypted), digests and current profile.

        Every active record, or only ``record_ids`` (the incremental matcher reads a new record's
        candidates this way instead of the whole store).
        """
        fields = FEATURE_FIELDS if include_identifiers else ("record_id", "profile_id", "anonymous_id")
        with self.access(ctx, action="read", resource="records", fields=fields) as work:
            out = self._features(work.connection, record_ids, include_identifiers=include_identifiers)
            work.subject_count = len(out)
            return out

    def _features(
        self, conn: Connection, record_ids: Collection[str] | None, *, include_identifiers: bool = True
    ) -> list[dict[str, Any]]:
        """The body of :meth:`identity_features`, inside the caller's access."""
        ids = sorted(set(record_ids)) if record_ids is not None else None
        chunks = [ids[i : i + 900] for i in range(0, len(ids), 900)] if ids is not None else [None]
        digests: dict[str, dict[str, str]] = defaultdict(dict)
        links: dict[str, str] = {}
        # Match keys (kind "match") are many per record and only for candidate retrieval.
        digest_query = select(t.blind_indexes.c.record_id, t.blind_indexes.c.kind, t.blind_indexes.c.digest).where(
            t.blind_indexes.c.kind != MATCH_KIND
        )
        link_query = select(t.record_links.c.record_id, t.record_links.c.profile_id).where(
            t.record_links.c.unlinked_at.is_(None)
        )
        for chunk in chunks:
            if chunk is not None:
                digest_query_now = digest_query.where(t.blind_indexes.c.record_id.in_(chunk))
                link_query_now = link_query.where(t.record_links.c.record_id.in_(chunk))
            else:
                digest_query_now, link_query_now = digest_query, link_query
            for record_id, kind, digest in conn.execute(digest_query_now).all():
                digests[record_id][kind] = digest
            links.update((record_id, profile_id) for record_id, profile_id in conn.execute(link_query_now).all())
        columns = [
            t.records.c.id,
            t.records.c.source,
            t.records.c.source_record_id,
            t.records.c.key_id,
            t.records.c.kind,
            t.records.c.occurred_at,
        ]
        columns += [t.records.c[name] for name in CLEAR_FIELDS]
        if include_identifiers:
            columns += [t.records.c[f"{name}_enc"] for name in IDENTITY_FIELDS]
        query = select(*columns).where(t.records.c.status == "active").order_by(t.records.c.id)
        rows = [
            row
            for chunk in chunks
            for row in conn.execute(query if chunk is None else query.where(t.records.c.id.in_(chunk))).all()
        ]
        if include_identifiers:
            self.load_ciphers(conn, {r.key_id for r in rows})
        ciphers = self._ciphers
        clear_at = [(name, 6 + i) for i, name in enumerate(CLEAR_FIELDS)]
        encrypted_at = [(name, 6 + len(CLEAR_FIELDS) + i) for i, name in enumerate(IDENTITY_FIELDS)]
        encrypted_names = [name for name, _ in encrypted_at]
        out: list[dict[str, Any]] = []
        for row in rows:
            record_id = row[0]
            item: dict[str, Any] = {
                "record_id": record_id,
                "source": row[1],
                "source_record_id": row[2],
                "kind": row[4],
                "occurred_at": row[5],
                "profile_id": links.get(record_id),
                "digests": digests.get(record_id) or {},
            }
            for name, position in clear_at:
                item[name] = row[position]
            if include_identifiers:
                # A shredded key (erased person) reads as no value, as everywhere else.
                cipher = ciphers.get(row[3])
                if cipher is not None:
                    item.update(zip(encrypted_names, cipher.decrypt_fields(record_id, row, encrypted_at), strict=True))
                else:
                    item.update(dict.fromkeys(encrypted_names))
            out.append(item)
        return out

    def apply_clusters(
        self, ctx: AccessContext, clusters: Mapping[str, str], *, method: str, reasons: Mapping[str, str] | None = None
    ) -> ResolutionStats:
        """Turn ``record_id -> cluster label`` into profiles with stable ids and link history."""
        reasons = reasons or {}
        with self.access(ctx, action="write", resource="profiles", fields=("record_id", "profile_id")) as work:
            conn = work.connection
            run_id = new_id("run")
            started = now()
            conn.execute(insert(t.identity_runs).values(id=run_id, started_at=started, method=method))
            current = dict(
                conn.execute(
                    select(t.record_links.c.record_id, t.record_links.c.profile_id).where(
                        t.record_links.c.unlinked_at.is_(None)
                    )
                ).all()
            )
            members: dict[str, list[str]] = defaultdict(list)
            for record_id, label in clusters.items():
                members[label].append(record_id)
            # Largest overlap first claims an existing id; ties go to the older (smaller) id.
            claims: list[tuple[int, str, str]] = []
            for label, records in members.items():
                overlap = Counter(current[r] for r in records if r in current)
                for profile_id, count in overlap.items():
                    claims.append((-count, profile_id, label))
            claims.sort()
            assigned: dict[str, str] = {}
            taken: set[str] = set()
            for _neg, profile_id, label in claims:
                if label in assigned or profile_id in taken:
                    continue
                assigned[label] = profile_id
                taken.add(profile_id)
            created = 0
            new_profiles: list[dict[str, Any]] = []
            for label in sorted(members):
                if label not in assigned:
                    profile_id = new_id("p")
                    assigned[label] = profile_id
                    new_profiles.append(
                        {"id": profile_id, "created_at": started, "updated_at": started, "status": "active"}
                    )
                    created += 1
            if new_profiles:
                conn.execute(insert(t.profiles), new_profiles)
            moved: list[tuple[str, str]] = []
            for label, records in members.items():
                target = assigned[label]
                moved.extend((record_id, target) for record_id in records if current.get(record_id) != target)
            # Records no longer in any cluster lose their link.
            dropped = [r for r in current if r not in clusters]
            stamp = now()
            relink_ids = [r for r, _ in moved if r in current] + dropped
            for start in range(0, len(relink_ids), 900):
                conn.execute(
                    update(t.record_links)
                    .where(
                        t.record_links.c.record_id.in_(relink_ids[start : start + 900]),
                        t.record_links.c.unlinked_at.is_(None),
                    )
                    .values(unlinked_at=stamp)
                )
            if moved:
                conn.execute(insert(t.record_links), link_rows(moved, stamp, reasons, method, run_id))
            live = set(assigned.values())
            previous = set(current.values())
            retired = sorted(previous - live)
            # Where each retired profile's records went (one pass, not one pass per retired profile).
            successors: dict[str, Counter[str]] = defaultdict(Counter)
            retired_set = set(retired)
            for lbl, recs in members.items():
                for r in recs:
                    if current.get(r) in retired_set:
                        successors[current[r]][assigned[lbl]] += 1
            for profile_id in retired:
                successor = successors.get(profile_id)
                conn.execute(
                    update(t.profiles)
                    .where(t.profiles.c.id == profile_id)
                    .values(
                        status="merged",
                        merged_into=successor.most_common(1)[0][0] if successor else None,
                        updated_at=stamp,
                    )
                )
            touched = {p for _, p in moved}
            for start in range(0, len(touched), 900):
                chunk = sorted(touched)[start : start + 900]
                conn.execute(
                    update(t.profiles).where(t.profiles.c.id.in_(chunk)).values(updated_at=stamp, status="active")
                )
            conn.execute(
                text(
                    "UPDATE events SET profile_id = (SELECT l.profile_id FROM record_links l "
                    "WHERE l.record_id = events.record_id AND l.unlinked_at IS NULL)"
                )
            )
            stats = ResolutionStats(
                records=len(clusters),
                profiles=len(live),
                created=created,
                kept=len(live) - created,
                retired=len(retired),
                relinked=len(moved),
                run_id=run_id,
            )
            conn.execute(
                update(t.identity_runs)
                .where(t.identity_runs.c.id == run_id)
                .values(finished_at=now(), stats=stats.__dict__)
            )
            work.subject_count = len(live)
            work.detail = (
                f"run={run_id} profiles={len(live)} created={created} retired={len(retired)} relinked={len(moved)}"
            )
        self.note_bulk_write(len(moved))
        return stats
