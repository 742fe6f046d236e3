"""Tags, segment memberships and export records, with their history.

Classifiers and segment engines compute *who* belongs where from policy-checked
frames; this module stores the outcome: tags gained and lost, members entering
and leaving segments, and which profiles each export included (so a
data-subject access request can list the exports a person was part of).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, insert, select, update

from cdp._exceptions import NotFound
from cdp.access import _tables as t
from cdp.access._core import StoreCore, new_id, now
from cdp.access.context import AccessContext

Item = TypeVar("Item")


def _chunks(items: Sequence[Item], size: int = 900) -> Iterable[Sequence[Item]]:
    """``items`` in slices of at most ``size`` (IN lists stay under every database's bind limit)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ActivationMixin(StoreCore):
    def define_tag(
        self, ctx: AccessContext, name: str, *, taxonomy: str, kind: str, description: str = "", definition: Any = None
    ) -> None:
        with self.access(ctx, action="write", resource="tags", fields=("tags",)) as work:
            conn = work.connection
            exists = conn.execute(select(t.tags.c.name).where(t.tags.c.name == name)).first()
            values = {"taxonomy": taxonomy, "kind": kind, "description": description, "definition": definition}
            if exists is None:
                conn.execute(insert(t.tags).values(name=name, created_at=now(), **values))
            else:
                conn.execute(update(t.tags).where(t.tags.c.name == name).values(**values))

    def _sync_holders(
        self,
        conn: Connection,
        table: Table,
        key: tuple[str, str],
        target: set[str],
        *,
        started: str,
        ended: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Make the open rows of ``table`` where ``key[0] == key[1]`` hold exactly ``target``
        profiles, keeping history: the gained get a row opened now (``started``), the lost have
        theirs closed now (``ended``). Returns (gained, lost)."""
        column, value = table.c[key[0]], key[1]
        open_rows = (column == value) & table.c[ended].is_(None)
        held = set(conn.execute(select(table.c.profile_id).where(open_rows)).scalars())
        stamp = now()
        gained = sorted(target - held)
        lost = sorted(held - target)
        if gained:
            rows = [{key[0]: value, "profile_id": p, started: stamp, **(extra or {})} for p in gained]
            conn.execute(insert(table), rows)
        for chunk in _chunks(lost):
            conn.execute(update(table).where(open_rows, table.c.profile_id.in_(chunk)).values({ended: stamp}))
        return gained, lost

    def sync_tag(
        self, ctx: AccessContext, tag: str, profile_ids: Iterable[str], *, assigned_by: str
    ) -> tuple[int, int]:
        """Make ``tag`` held by exactly ``profile_ids`` (rule-based tags); returns (gained, lost)."""
        with self.access(ctx, action="write", resource="profile_tags", fields=("tags", "profile_id")) as work:
            gained, lost = self._sync_holders(
                work.connection,
                t.profile_tags,
                ("tag", tag),
                set(profile_ids),
                started="assigned_at",
                ended="removed_at",
                extra={"assigned_by": assigned_by},
            )
            work.touch(gained + lost)
            work.detail = f"tag={tag} gained={len(gained)} lost={len(lost)}"
            return len(gained), len(lost)

    def tag_counts(self, ctx: AccessContext) -> dict[str, int]:
        from sqlalchemy import func

        with self.access(ctx, action="read", resource="profile_tags", fields=("tags",)) as work:
            rows = work.connection.execute(
                select(t.profile_tags.c.tag, func.count())
                .where(t.profile_tags.c.removed_at.is_(None))
                .group_by(t.profile_tags.c.tag)
            )
            return {tag: int(n) for tag, n in rows}

    def profile_tags(self, ctx: AccessContext) -> dict[str, list[str]]:
        with self.access(ctx, action="read", resource="profile_tags", fields=("tags", "profile_id")) as work:
            out: dict[str, list[str]] = {}
            for profile_id, tag in work.connection.execute(
                select(t.profile_tags.c.profile_id, t.profile_tags.c.tag).where(t.profile_tags.c.removed_at.is_(None))
            ):
                out.setdefault(profile_id, []).append(tag)
            work.subject_count = len(out)
            return out

    def save_segment(self, ctx: AccessContext, name: str, definition: Mapping[str, Any]) -> int:
        """Store a segment definition; a changed definition gets the next version."""
        with self.access(ctx, action="write", resource="segments", fields=("segments",)) as work:
            conn = work.connection
            row = conn.execute(
                select(t.segments.c.version, t.segments.c.definition).where(t.segments.c.name == name)
            ).first()
            if row is None:
                conn.execute(
                    insert(t.segments).values(
                        name=name, version=1, definition=dict(definition), created_by=ctx.actor, created_at=now()
                    )
                )
                return 1
            if row.definition == dict(definition):
                return int(row.version)
            version = int(row.version) + 1
            conn.execute(
                update(t.segments).where(t.segments.c.name == name).values(version=version, definition=dict(definition))
            )
            return version

    def sync_membership(self, ctx: AccessContext, segment: str, profile_ids: Iterable[str]) -> tuple[int, int, int]:
        """Materialise membership with entered/exited history; returns (size, entered, exited)."""
        target = set(profile_ids)
        with self.access(
            ctx, action="write", resource="segment_memberships", fields=("segments", "profile_id")
        ) as work:
            entered, exited = self._sync_holders(
                work.connection,
                t.segment_memberships,
                ("segment", segment),
                target,
                started="entered_at",
                ended="exited_at",
            )
            work.touch(entered + exited)
            work.detail = f"segment={segment} size={len(target)} entered={len(entered)} exited={len(exited)}"
            return len(target), len(entered), len(exited)

    def segment_members(self, ctx: AccessContext, segment: str, *, action: str = "read") -> list[str]:
        """The current members of a computed segment; NotFound for a segment never computed (an
        export or a sync of a misspelt name must not read as "nobody", which would remove everyone)."""
        with self.access(ctx, action=action, resource="segment_memberships", fields=("segments", "profile_id")) as work:
            known = work.connection.execute(select(t.segments.c.name).where(t.segments.c.name == segment)).first()
            if known is None:
                raise NotFound(f"segment {segment!r} has not been computed: run `cdp segments refresh` with its file")
            members = sorted(
                work.connection.execute(
                    select(t.segment_memberships.c.profile_id).where(
                        t.segment_memberships.c.segment == segment, t.segment_memberships.c.exited_at.is_(None)
                    )
                ).scalars()
            )
            work.subject_count = len(members)
            return members

    def record_export(
        self,
        ctx: AccessContext,
        *,
        segment: str,
        destination: str,
        location: str,
        profile_ids: Iterable[str],
        fence_since: datetime | None = None,
    ) -> tuple[str, list[str]]:
        """Record who an export included; returns (export id, people fenced out).

        The consent fence: anyone whose consent for the export's purpose was refused or
        withdrawn after ``fence_since`` (the export's start) is excluded here, in the same
        transaction that records the export, so a withdrawal during an export wins."""
        members = sorted(set(profile_ids))
        fenced: list[str] = []
        with self.access(ctx, action="export", resource="exports", fields=("profile_id", "segments")) as work:
            conn = work.connection
            consent_purpose = work.decision.consent_purpose
            if fence_since is not None and consent_purpose is not None and members:
                fenced = self._withdrawn_since(conn, consent_purpose, fence_since, members)
                members = [m for m in members if m not in set(fenced)]
            export_id = self._insert_export(conn, ctx, segment, destination, location, members)
            work.touch(members)
            work.detail = f"export={export_id} destination={destination} fenced_out={len(fenced)}"
            return export_id, fenced

    def _insert_export(
        self, conn: Any, ctx: AccessContext, segment: str, destination: str, location: str, members: Sequence[str]
    ) -> str:
        """One ``exports`` row and its ``export_members`` (whom it sent: a data-subject access
        request lists it, an erasure queues a deletion for it); returns the export id."""
        export_id = new_id("x")
        conn.execute(
            insert(t.exports).values(
                id=export_id,
                segment=segment,
                destination=destination,
                location=location,
                actor=ctx.actor,
                created_at=now(),
                member_count=len(members),
            )
        )
        if members:
            conn.execute(insert(t.export_members), [{"export_id": export_id, "profile_id": p} for p in members])
        return export_id

    def _withdrawn_since(self, conn: Any, purpose: str, since: datetime, profile_ids: list[str]) -> list[str]:
        out: set[str] = set()
        for chunk in _chunks(profile_ids):
            out.update(
                conn.execute(
                    select(t.record_links.c.profile_id)
                    .join(t.consents, t.consents.c.record_id == t.record_links.c.record_id)
                    .where(
                        t.record_links.c.profile_id.in_(chunk),
                        t.record_links.c.unlinked_at.is_(None),
                        t.consents.c.purpose == purpose,
                        t.consents.c.status.in_(("denied", "withdrawn")),
                        t.consents.c.recorded_at >= since,
                    )
                ).scalars()
            )
        return sorted(out)
