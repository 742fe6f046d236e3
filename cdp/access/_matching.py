"""Store side of incremental identity matching: candidate keys as blind indexes, attaching new records.

Why this module exists: a record arriving through any connector should join its
profile without re-running the batch resolution, and without a plaintext index
of every customer held in memory (that would be a cache of personal data). The
matcher's blocking keys (email key, phone, family name + birth date, ...) are
stored as truncated keyed HMACs of kind ``match`` beside the other blind
indexes. A new record's keys are looked up here; only the candidates found, and
the other records of their profiles, are then decrypted, inside an audited
access. The keys are computed by :mod:`cdp.identity.realtime` (the access layer
does not know how people are matched, only how to store and find digests).

Leakage: like every blind index, a match key tells someone holding the
database which records share, say, a family name and a birth date, not the
values (SECURITY.md). Truncating to 64 bits changes nothing there; it keeps the
rows short, and a rare collision only adds a candidate that scoring rejects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from cdp.access import _tables as t
from cdp.access._bulk import bulk_insert
from cdp.access._core import new_id, now
from cdp.access._identity import FEATURE_FIELDS, MATCH_KIND, IdentityMixin, link_rows
from cdp.access._identity_rules import IdentityRulesMixin
from cdp.access.context import AccessContext

MATCH_BITS = 64
MAX_CANDIDATES_PER_KEY = 200
"""A key shared by more records than this (a placeholder e-mail, a very common name) retrieves nobody."""
NEW_PROFILE = "new:"
"""Prefix of an assignment label that asks for a new profile (records with the same label share it)."""
_CHUNK = 900


@dataclass(frozen=True)
class Neighbourhood:
    """What a run of new records is matched against: all of it read in one access."""

    candidates: dict[str, str]
    """Records of live profiles sharing a match key with a new record: ``record -> profile``."""
    sharing: list[tuple[str, str, str, str | None]]
    """Records holding one of the new records' verified identifiers: ``(record, kind, digest, profile)``."""
    features: list[dict[str, Any]]
    """Decrypted features of the candidates and of every record of their profiles and the holders'."""


@dataclass(frozen=True)
class AttachStats:
    attached: int
    joined_existing: int
    profiles_created: int
    already_linked: int
    run_id: str


_HOLDERS_SLACK = 4  # keys with more holders than this many times the cap are not read (see _candidates)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class MatchingMixin(IdentityRulesMixin, IdentityMixin):
    def _match_digest(self, key: str) -> str:
        return self.indexer.index_truncated(MATCH_KIND, key, MATCH_BITS)

    def _unmatched(
        self, conn: Connection, record_ids: Collection[str] | None, kinds: Collection[str] | None
    ) -> list[str]:
        link = t.record_links
        query = (
            select(t.records.c.id)
            .outerjoin(link, and_(link.c.record_id == t.records.c.id, link.c.unlinked_at.is_(None)))
            .where(t.records.c.status == "active", link.c.id.is_(None))
            .order_by(t.records.c.id)
        )
        if kinds is not None:
            query = query.where(t.records.c.kind.in_(sorted(kinds)))
        if record_ids is None:
            return list(conn.execute(query).scalars())
        return sorted(
            rid
            for chunk in _chunks(sorted(set(record_ids)))
            for rid in conn.execute(query.where(t.records.c.id.in_(chunk))).scalars()
        )

    def unmatched_records(
        self, ctx: AccessContext, *, record_ids: Collection[str] | None = None, kinds: Collection[str] | None = None
    ) -> list[str]:
        """Active records that belong to no profile yet (new arrivals), oldest id first.

        All of them, or only those among ``record_ids``; only records of ``kinds`` if given
        (``identity`` leaves out anonymous activity, which stays unlinked until someone identifies).
        """
        with self.access(ctx, action="read", resource="records", fields=("record_id", "profile_id")) as work:
            found = self._unmatched(work.connection, record_ids, kinds)
            work.subject_count = len(found)
            return found

    def arrivals(
        self, ctx: AccessContext, *, record_ids: Collection[str] | None = None, kinds: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Features (decrypted) of the records :meth:`unmatched_records` would list, in one access."""
        with self.access(ctx, action="read", resource="records", fields=FEATURE_FIELDS) as work:
            ids = self._unmatched(work.connection, record_ids, kinds)
            found = self._features(work.connection, ids) if ids else []
            work.subject_count = len(found)
            return found

    def records_without_match_keys(self, ctx: AccessContext) -> list[str]:
        """Active records for which no match key has been written (new since the last run, or older data)."""
        with self.access(ctx, action="read", resource="blind_indexes", fields=("record_id", "match_key")) as work:
            keyed = select(t.blind_indexes.c.record_id).where(t.blind_indexes.c.kind == MATCH_KIND)
            found = list(
                work.connection.execute(
                    select(t.records.c.id)
                    .where(t.records.c.status == "active", t.records.c.id.not_in(keyed))
                    .order_by(t.records.c.id)
                ).scalars()
            )
            work.subject_count = len(found)
            return found

    def _store_match_keys(
        self, conn: Connection, keys_by_record: Mapping[str, Iterable[str]], *, replace: bool = True
    ) -> int:
        for chunk in _chunks(sorted(keys_by_record)) if replace else ():
            conn.execute(
                delete(t.blind_indexes).where(
                    t.blind_indexes.c.kind == MATCH_KIND, t.blind_indexes.c.record_id.in_(chunk)
                )
            )
        digest = self._match_digest
        rows = [
            (record_id, MATCH_KIND, d)
            for record_id, keys in keys_by_record.items()
            for d in sorted({digest(k) for k in keys})
        ]
        bulk_insert(conn, t.blind_indexes, ("record_id", "kind", "digest")).run(conn, rows)
        return len(rows)

    def write_match_keys(
        self, ctx: AccessContext, keys_by_record: Mapping[str, Iterable[str]], *, replace_all: bool = False
    ) -> int:
        """Store each record's match keys as digests, replacing the ones it had (all of them with ``replace_all``)."""
        with self.access(ctx, action="write", resource="blind_indexes", fields=("record_id", "match_key")) as work:
            if replace_all:
                work.connection.execute(delete(t.blind_indexes).where(t.blind_indexes.c.kind == MATCH_KIND))
            work.subject_count = len(keys_by_record)
            return self._store_match_keys(work.connection, keys_by_record, replace=not replace_all)

    def match_neighbourhood(
        self,
        ctx: AccessContext,
        keys_by_record: Mapping[str, Iterable[str]],
        identifier_kinds: Collection[str],
        identifier_digests: Collection[str],
        *,
        max_holders: int,
    ) -> Neighbourhood:
        """Everything new records are matched against, in one audited read (see :class:`Neighbourhood`).

        A match key shared by more than ``MAX_CANDIDATES_PER_KEY`` records retrieves nobody (as in
        the batch); an identifier held by more than ``max_holders`` records brings no profile in.
        """
        with self.access(ctx, action="read", resource="records", fields=(*FEATURE_FIELDS, "match_key")) as work:
            conn = work.connection
            candidates = self._candidates(conn, keys_by_record)
            sharing = self._sharing(conn, identifier_kinds, identifier_digests) if identifier_digests else []
            holders: dict[tuple[str, str], list[str]] = defaultdict(list)
            for _, kind, digest, profile_id in sharing:
                if profile_id is not None:
                    holders[(kind, digest)].append(profile_id)
            profiles = set(candidates.values()) | {
                p for group in holders.values() if len(group) <= max_holders for p in group
            }
            members = self._members(conn, profiles)
            known = set(candidates) | {r for records in members.values() for r in records}
            features = self._features(conn, known) if known else []
            work.touch(profiles)
            return Neighbourhood(candidates, sharing, features)

    def _candidates(self, conn: Connection, keys_by_record: Mapping[str, Iterable[str]]) -> dict[str, str]:
        digests = sorted({self._match_digest(k) for keys in keys_by_record.values() for k in keys})
        asking = set(keys_by_record)
        link = t.record_links
        query = (
            select(t.blind_indexes.c.digest, t.blind_indexes.c.record_id, link.c.profile_id)
            .join(link, and_(link.c.record_id == t.blind_indexes.c.record_id, link.c.unlinked_at.is_(None)))
            .join(t.profiles, t.profiles.c.id == link.c.profile_id)
            .join(t.records, t.records.c.id == t.blind_indexes.c.record_id)
            .where(
                t.blind_indexes.c.kind == MATCH_KIND,
                t.profiles.c.status == "active",
                t.records.c.status == "active",
            )
        )
        # A key held by far more records than the cap retrieves nobody: its holders are not fetched at
        # all (a city-wide key can have thousands). The count is over every holder; the exact cap below
        # applies to the active ones, so only keys that could still pass are read.
        counted = (
            select(t.blind_indexes.c.digest)
            .where(t.blind_indexes.c.kind == MATCH_KIND)
            .group_by(t.blind_indexes.c.digest)
            .having(func.count() <= MAX_CANDIDATES_PER_KEY * _HOLDERS_SLACK)
        )
        by_digest: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for chunk in _chunks(digests):
            wanted = [d for (d,) in conn.execute(counted.where(t.blind_indexes.c.digest.in_(chunk)))]
            if not wanted:
                continue
            for digest, record_id, profile_id in conn.execute(query.where(t.blind_indexes.c.digest.in_(wanted))).all():
                by_digest[digest].append((record_id, profile_id))
        found: dict[str, str] = {}
        for members in by_digest.values():
            if len(members) <= MAX_CANDIDATES_PER_KEY:
                found.update((r, p) for r, p in members if r not in asking)
        return found

    @staticmethod
    def _members(conn: Connection, profile_ids: Collection[str]) -> dict[str, list[str]]:
        members: dict[str, list[str]] = defaultdict(list)
        link = t.record_links
        query = (
            select(link.c.profile_id, link.c.record_id)
            .join(t.records, t.records.c.id == link.c.record_id)
            .where(link.c.unlinked_at.is_(None), t.records.c.status == "active")
        )
        for chunk in _chunks(sorted(set(profile_ids))):
            for profile_id, record_id in conn.execute(query.where(link.c.profile_id.in_(chunk))).all():
                members[profile_id].append(record_id)
        return dict(members)

    @staticmethod
    def _sharing(
        conn: Connection, kinds: Collection[str], digests: Collection[str]
    ) -> list[tuple[str, str, str, str | None]]:
        link = t.record_links
        query = (
            select(t.blind_indexes.c.record_id, t.blind_indexes.c.kind, t.blind_indexes.c.digest, link.c.profile_id)
            .join(t.records, t.records.c.id == t.blind_indexes.c.record_id)
            .outerjoin(link, and_(link.c.record_id == t.blind_indexes.c.record_id, link.c.unlinked_at.is_(None)))
            .where(t.records.c.status == "active", t.blind_indexes.c.kind.in_(sorted(kinds)))
        )
        out: list[tuple[str, str, str, str | None]] = []
        for chunk in _chunks(sorted(set(digests))):
            out.extend((r, k, d, p) for r, k, d, p in conn.execute(query.where(t.blind_indexes.c.digest.in_(chunk))))
        return out

    def attach_records(
        self,
        ctx: AccessContext,
        assignments: Mapping[str, str],
        *,
        reasons: Mapping[str, str] | None = None,
        method: str = "incremental",
        match_keys: Mapping[str, Iterable[str]] | None = None,
        evidence: Sequence[Mapping[str, Any]] = (),
    ) -> AttachStats:
        """Link new records to profiles without touching any other record's link, in one transaction.

        ``assignments`` maps a record id to an existing profile id, or to a label starting with
        ``NEW_PROFILE`` (records with the same label share one new profile). A record that got
        a profile in the meantime (a concurrent run) keeps it: attaching is idempotent. The
        records' ``match_keys`` and the ``evidence`` of probabilistic joins are written with them.
        """
        reasons = reasons or {}
        with self.access(
            ctx, action="write", resource="profiles", fields=("record_id", "profile_id", "match_key")
        ) as work:
            conn = work.connection
            stamp = now()
            run_id = new_id("run")
            conn.execute(insert(t.identity_runs).values(id=run_id, started_at=stamp, method=method))
            linked: set[str] = set()
            for chunk in _chunks(sorted(assignments)):
                linked.update(
                    conn.execute(
                        select(t.record_links.c.record_id).where(
                            t.record_links.c.record_id.in_(chunk), t.record_links.c.unlinked_at.is_(None)
                        )
                    ).scalars()
                )
            todo = {r: label for r, label in assignments.items() if r not in linked}
            created = {label: new_id("p") for label in sorted({v for v in todo.values() if v.startswith(NEW_PROFILE)})}
            if created:
                conn.execute(
                    insert(t.profiles),
                    [{"id": p, "created_at": stamp, "updated_at": stamp, "status": "active"} for p in created.values()],
                )
            targets = {r: created.get(label, label) for r, label in todo.items()}
            if targets:
                conn.execute(insert(t.record_links), link_rows(sorted(targets.items()), stamp, reasons, method, run_id))
            by_profile: dict[str, list[str]] = defaultdict(list)
            for record_id, profile_id in targets.items():
                by_profile[profile_id].append(record_id)
            for profile_id, record_ids in sorted(by_profile.items()):
                for chunk in _chunks(sorted(record_ids)):
                    conn.execute(update(t.events).where(t.events.c.record_id.in_(chunk)).values(profile_id=profile_id))
            new_profiles = set(created.values())
            for chunk in _chunks(sorted(set(targets.values()) - new_profiles)):
                conn.execute(update(t.profiles).where(t.profiles.c.id.in_(chunk)).values(updated_at=stamp))
            if match_keys:
                self._store_match_keys(conn, match_keys)
            if evidence:
                self._write_evidence(conn, run_id, [e for e in evidence if e["record_b"] in targets])
            stats = AttachStats(
                attached=len(targets),
                joined_existing=sum(1 for p in targets.values() if p not in new_profiles),
                profiles_created=len(created),
                already_linked=len(assignments) - len(todo),
                run_id=run_id,
            )
            summary: dict[str, Any] = dict(stats.__dict__)
            conn.execute(
                update(t.identity_runs).where(t.identity_runs.c.id == run_id).values(finished_at=now(), stats=summary)
            )
            work.touch(set(targets.values()))
            work.detail = f"run={run_id} attached={stats.attached} created={stats.profiles_created}"
            return stats
