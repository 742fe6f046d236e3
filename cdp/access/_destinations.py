"""What each destination holds of each segment, the syncs that changed it, and queued deletions.

Why this module exists: an audience sync (``cdp/activation``) sends a destination only
the members who entered and left since its last sync, so cdp keeps, per destination and
segment, the profile ids the destination currently holds. This is customer data (who is
in which audience, where it went), so it lives behind the access layer like every other
table: each call runs in a policy-checked, audited access as the destination's service
account. A delivered sync changes the held audience, records an export (so a data-subject
access request lists it) and its row in one transaction; a failed one records only its
error, and the next sync starts from the same held audience.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from cdp.access import _tables as t
from cdp.access._activation import ActivationMixin, _chunks
from cdp.access._core import now
from cdp.access.context import AccessContext


class DestinationMixin(ActivationMixin):
    def destination_audience(self, ctx: AccessContext, destination: str, segment: str) -> set[str]:
        """The profile ids ``destination`` holds for ``segment`` (as of its last delivered sync)."""
        with self.access(ctx, action="export", resource="destination_members", fields=("profile_id",)) as work:
            held = set(
                work.connection.execute(
                    select(t.destination_members.c.profile_id).where(
                        t.destination_members.c.destination == destination,
                        t.destination_members.c.segment == segment,
                    )
                ).scalars()
            )
            work.subject_count = len(held)
            work.detail = f"destination={destination} segment={segment}"
            return held

    def withdrawn_since(self, ctx: AccessContext, since: datetime, profile_ids: Sequence[str]) -> set[str]:
        """Those of ``profile_ids`` whose consent for the context's purpose was refused or withdrawn
        after ``since``: the fence a sync applies just before it delivers."""
        with self.access(ctx, action="export", resource="consents", fields=("profile_id",)) as work:
            purpose = work.decision.consent_purpose
            if purpose is None or not profile_ids:
                return set()
            fenced = set(self._withdrawn_since(work.connection, purpose, since, list(profile_ids)))
            work.touch(sorted(fenced))
            return fenced

    def record_destination_sync(
        self,
        ctx: AccessContext,
        *,
        sync_id: str,
        destination: str,
        segment: str,
        added: Sequence[str],
        removed: Sequence[str],
        excluded: int,
        location: str,
        started_at: datetime,
    ) -> str:
        """A delivered sync: the held audience gains ``added`` and loses ``removed``; the sync is
        recorded as an export of the people it added. Returns the export id."""
        stamp = now()
        with self.access(ctx, action="export", resource="destination_members", fields=("profile_id",)) as work:
            conn = work.connection
            # Delete then insert: a sync racing this one (or repeating it) cannot break the primary key.
            for chunk in _chunks([*removed, *added]):
                conn.execute(
                    delete(t.destination_members).where(
                        t.destination_members.c.destination == destination,
                        t.destination_members.c.segment == segment,
                        t.destination_members.c.profile_id.in_(chunk),
                    )
                )
            if added:
                conn.execute(
                    insert(t.destination_members),
                    [
                        {"destination": destination, "segment": segment, "profile_id": p, "synced_at": stamp}
                        for p in added
                    ],
                )
            export_id = self._insert_export(conn, ctx, segment, destination, location, added)
            self._sync_row(
                conn, ctx, sync_id, destination, segment, "delivered", len(added), len(removed), excluded, started_at
            )
            conn.execute(
                update(t.destination_syncs).where(t.destination_syncs.c.id == sync_id).values(export_id=export_id)
            )
            work.touch([*added, *removed])
            work.subject_count = len(added) + len(removed)
            work.detail = f"sync={sync_id} destination={destination} added={len(added)} removed={len(removed)}"
            return export_id

    def record_failed_sync(
        self,
        ctx: AccessContext,
        *,
        sync_id: str,
        destination: str,
        segment: str,
        error: str,
        started_at: datetime,
    ) -> None:
        """A sync the destination did not take: its error is kept; the held audience is unchanged."""
        with self.access(ctx, action="export", resource="destination_syncs", fields=()) as work:
            self._sync_row(
                work.connection, ctx, sync_id, destination, segment, "failed", 0, 0, 0, started_at, error=error
            )
            work.subject_count = 0
            work.detail = f"sync={sync_id} destination={destination} failed"

    def _sync_row(
        self,
        conn: Any,
        ctx: AccessContext,
        sync_id: str,
        destination: str,
        segment: str,
        status: str,
        added: int,
        removed: int,
        excluded: int,
        started_at: datetime,
        *,
        error: str | None = None,
    ) -> None:
        conn.execute(
            insert(t.destination_syncs).values(
                id=sync_id,
                destination=destination,
                segment=segment,
                purpose=ctx.purpose,
                actor=ctx.actor,
                status=status,
                added=added,
                removed=removed,
                excluded=excluded,
                error=error[:2000] if error else None,
                started_at=started_at,
                finished_at=now(),
            )
        )

    def destination_syncs(
        self, ctx: AccessContext, *, destination: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest syncs (newest first): counts, status and error; no personal data."""
        with self.access(ctx, action="read", resource="destination_syncs", fields=()) as work:
            query = select(t.destination_syncs).order_by(t.destination_syncs.c.started_at.desc()).limit(limit)
            if destination is not None:
                query = query.where(t.destination_syncs.c.destination == destination)
            rows = [dict(r._mapping) for r in work.connection.execute(query)]
            work.subject_count = 0
            return rows

    def queued_destination_deletions(self, ctx: AccessContext, destination: str) -> list[tuple[int, str, str | None]]:
        """(queue id, profile id, request id) of the erasures ``destination`` has not been told of."""
        with self.access(ctx, action="export", resource="destination_deletions", fields=("profile_id",)) as work:
            rows = [
                (int(r[0]), str(r[1]), r[2])
                for r in work.connection.execute(
                    select(
                        t.destination_deletions.c.id,
                        t.destination_deletions.c.profile_id,
                        t.destination_deletions.c.request_id,
                    )
                    .where(
                        t.destination_deletions.c.destination == destination,
                        t.destination_deletions.c.status == "queued",
                    )
                    .order_by(t.destination_deletions.c.id)
                )
            ]
            work.touch(sorted({r[1] for r in rows}))
            return rows

    def finish_destination_deletions(
        self, ctx: AccessContext, destination: str, queue_ids: Sequence[int], profile_ids: Sequence[str]
    ) -> None:
        """Mark queued deletions sent, and drop those people from every audience ``destination`` holds
        (they were deleted there, so no later sync sends them a removal)."""
        with self.access(ctx, action="export", resource="destination_deletions", fields=("profile_id",)) as work:
            conn = work.connection
            for numbers in _chunks(list(queue_ids)):
                conn.execute(
                    update(t.destination_deletions)
                    .where(t.destination_deletions.c.id.in_(numbers))
                    .values(status="sent")
                )
            for chunk in _chunks(list(profile_ids)):
                conn.execute(
                    delete(t.destination_members).where(
                        t.destination_members.c.destination == destination,
                        t.destination_members.c.profile_id.in_(chunk),
                    )
                )
            work.touch(sorted(set(profile_ids)))
            work.detail = f"destination={destination} deletions_sent={len(queue_ids)}"
