"""Manual identity rules and match evidence: people's decisions and the matcher's reasons.

Automatic resolution must never undo a person's decision, and every
probabilistic join must be explainable. This module stores both:

- ``identity_rules``: *merge* (two records belong together), *split* (a record
  stands alone), *never* (two records are different people), each with its
  actor and reason, revocable but never deleted;
- ``match_evidence``: for each scored pair a run joined (or refused), the
  probability, the total match weight and, per compared field, the comparison
  level and its weight. Never the compared values.

Only pseudonymous ids are read or written here, so a data engineer (purpose
``operations``) can act on profiles without seeing who they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from cdp._exceptions import InputError, NotFound
from cdp.access import _tables as t
from cdp.access._core import StoreCore, now
from cdp.access.context import AccessContext

RULE_KINDS = frozenset({"merge", "split", "never"})


def _chunks(items: Sequence[str], size: int = 450) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IdentityRulesMixin(StoreCore):
    def add_identity_rule(
        self, ctx: AccessContext, kind: str, record_a: str, record_b: str | None = None, *, reason: str = ""
    ) -> int:
        """Store a manual rule; returns its id. ``record_b`` is required for merge and never."""
        if kind not in RULE_KINDS:
            raise InputError(f"unknown identity rule kind {kind!r} (merge, split or never)")
        if (kind == "split") != (record_b is None):
            raise InputError(f"a {kind} rule takes {'one record' if kind == 'split' else 'two records'}")
        with self.access(ctx, action="write", resource="identity_rules", fields=("record_id",)) as work:
            conn = work.connection
            known = set(
                conn.execute(
                    select(t.records.c.id).where(t.records.c.id.in_([r for r in (record_a, record_b) if r]))
                ).scalars()
            )
            unknown = [r for r in (record_a, record_b) if r and r not in known]
            if unknown:
                raise NotFound(f"no such record: {unknown[0]}")
            result = conn.execute(
                insert(t.identity_rules).values(
                    kind=kind,
                    record_a=record_a,
                    record_b=record_b,
                    actor=ctx.actor,
                    reason=reason[:2000] or None,
                    created_at=now(),
                )
            )
            key = result.inserted_primary_key
            rule_id = int(key[0]) if key else 0
            work.touch([r for r in (record_a, record_b) if r])
            work.detail = f"rule={rule_id} kind={kind}"
            return rule_id

    def revoke_identity_rules(
        self, ctx: AccessContext, *, records: Iterable[str], kinds: Iterable[str] = tuple(RULE_KINDS)
    ) -> int:
        """Revoke the active rules of ``kinds`` naming any of ``records``; returns how many."""
        ids = sorted(set(records))
        kinds = sorted(set(kinds))
        with self.access(ctx, action="write", resource="identity_rules", fields=("record_id",)) as work:
            count = 0
            for chunk in _chunks(ids):
                result = work.connection.execute(
                    update(t.identity_rules)
                    .where(
                        t.identity_rules.c.revoked_at.is_(None),
                        t.identity_rules.c.kind.in_(kinds),
                        or_(t.identity_rules.c.record_a.in_(chunk), t.identity_rules.c.record_b.in_(chunk)),
                    )
                    .values(revoked_at=now())
                )
                count += int(result.rowcount or 0)
            work.touch(ids)
            work.detail = f"revoked={count}"
            return count

    def identity_rules(self, ctx: AccessContext, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Manual rules, oldest first."""
        with self.access(ctx, action="read", resource="identity_rules", fields=("record_id",)) as work:
            query = select(t.identity_rules).order_by(t.identity_rules.c.id)
            if not include_revoked:
                query = query.where(t.identity_rules.c.revoked_at.is_(None))
            rows = [dict(row._mapping) for row in work.connection.execute(query)]
            work.subject_count = len(rows)
            return rows

    def record_match_evidence(self, ctx: AccessContext, run_id: str, evidence: Sequence[Mapping[str, Any]]) -> int:
        """Store per-pair evidence of a run (``record_a, record_b, probability, match_weight, details``)."""
        if not evidence:
            return 0
        with self.access(ctx, action="write", resource="match_evidence", fields=("record_id",)) as work:
            written = self._write_evidence(work.connection, run_id, evidence)
            work.subject_count = written
            work.detail = f"run={run_id} pairs={written}"
            return written

    @staticmethod
    def _write_evidence(conn: Connection, run_id: str, evidence: Sequence[Mapping[str, Any]]) -> int:
        """Insert evidence rows inside the caller's access."""
        stamp = now()
        rows = [
            {
                "run_id": run_id,
                "record_a": e["record_a"],
                "record_b": e["record_b"],
                "probability": float(e["probability"]),
                "match_weight": float(e["match_weight"]),
                "details": dict(e.get("details") or {}),
                "created_at": stamp,
            }
            for e in evidence
        ]
        for start in range(0, len(rows), 1000):
            conn.execute(insert(t.match_evidence), rows[start : start + 1000])
        return len(rows)

    def match_evidence(self, ctx: AccessContext, record_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The newest evidence for each pair that involves one of ``record_ids``."""
        ids = sorted(set(record_ids))
        with self.access(ctx, action="read", resource="match_evidence", fields=("record_id",)) as work:
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for chunk in _chunks(ids):
                query = (
                    select(t.match_evidence)
                    .where(or_(t.match_evidence.c.record_a.in_(chunk), t.match_evidence.c.record_b.in_(chunk)))
                    .order_by(t.match_evidence.c.id.desc())
                )
                for row in work.connection.execute(query):
                    found.setdefault((row.record_a, row.record_b), dict(row._mapping))
            work.touch(ids)
            return sorted(found.values(), key=lambda e: (-float(e["probability"]), e["record_a"], e["record_b"]))

    def current_links(self, ctx: AccessContext) -> dict[str, str]:
        """``record id -> profile id`` for every linked record."""
        with self.access(ctx, action="read", resource="record_links", fields=("record_id", "profile_id")) as work:
            links = {
                str(r): str(p)
                for r, p in work.connection.execute(
                    select(t.record_links.c.record_id, t.record_links.c.profile_id).where(
                        t.record_links.c.unlinked_at.is_(None)
                    )
                )
            }
            work.subject_count = len(links)
            return links

    def profile_records(self, ctx: AccessContext, profile_id: str) -> tuple[str, list[dict[str, Any]]]:
        """(live profile id, its records with source, kind and link reason).

        A profile merged into another is followed to the one that absorbed it.
        """
        fields = ("record_id", "profile_id", "source")
        with self.access(ctx, action="read", resource="record_links", fields=fields) as work:
            conn = work.connection
            current = profile_id
            for _ in range(50):
                row = conn.execute(
                    select(t.profiles.c.status, t.profiles.c.merged_into).where(t.profiles.c.id == current)
                ).first()
                if row is None:
                    raise NotFound(f"no such profile: {profile_id}")
                if row.status != "merged" or not row.merged_into:
                    break
                current = str(row.merged_into)
            query = (
                select(
                    t.record_links.c.record_id,
                    t.record_links.c.reason,
                    t.record_links.c.linked_at,
                    t.records.c.source,
                    t.records.c.kind,
                )
                .join(t.records, t.records.c.id == t.record_links.c.record_id)
                .where(t.record_links.c.profile_id == current, t.record_links.c.unlinked_at.is_(None))
                .order_by(t.record_links.c.record_id)
            )
            rows = [dict(r._mapping) for r in conn.execute(query)]
            work.touch([current])
            return current, rows
