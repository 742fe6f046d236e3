"""Manual tags: assigned and removed by a named person, with when; and the tag catalogue.

Rule tags are recomputed on every refresh (``sync_tag``); manual tags are
put on people by an operator and stay until an operator removes them, so
they record who assigned them (``assigned_by`` is the actor) and when. A
manual tag cannot take a rule tag's name (the next refresh would overwrite
it), and rule syncing never touches a manual tag. Removals keep the row with
``removed_at``; who removed it is in the audit log (actor and subjects).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select, update

from cdp._exceptions import Conflict, NotFound
from cdp.access import _tables as t
from cdp.access._core import StoreCore, now
from cdp.access.context import AccessContext


def _chunks(items: list[str], size: int = 900) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ManualTagMixin(StoreCore):
    def tag_definitions(self, ctx: AccessContext) -> dict[str, dict[str, Any]]:
        """Every defined tag: taxonomy, kind (rule | manual), description, created_at."""
        with self.access(ctx, action="read", resource="tags", fields=("tags",)) as work:
            rows = work.connection.execute(
                select(t.tags.c.name, t.tags.c.taxonomy, t.tags.c.kind, t.tags.c.description, t.tags.c.created_at)
            )
            return {
                r.name: {
                    "taxonomy": r.taxonomy,
                    "kind": r.kind,
                    "description": r.description or "",
                    "created_at": r.created_at,
                }
                for r in rows
            }

    def _manual_tag(self, conn: Any, tag: str) -> None:
        row = conn.execute(select(t.tags.c.kind).where(t.tags.c.name == tag)).first()
        if row is None:
            raise NotFound(f"tag {tag!r} is not defined (define it as a manual tag first)")
        if row.kind != "manual":
            raise Conflict(f"tag {tag!r} is a {row.kind} tag: it is computed on refresh and cannot be set by hand")

    def define_manual_tag(self, ctx: AccessContext, name: str, *, taxonomy: str, description: str = "") -> None:
        with self.access(ctx, action="write", resource="tags", fields=("tags",)) as work:
            conn = work.connection
            row = conn.execute(select(t.tags.c.kind).where(t.tags.c.name == name)).first()
            if row is not None and row.kind != "manual":
                raise Conflict(f"tag {name!r} already exists as a {row.kind} tag")
            values = {"taxonomy": taxonomy, "kind": "manual", "description": description}
            if row is None:
                conn.execute(insert(t.tags).values(name=name, created_at=now(), **values))
            else:
                conn.execute(update(t.tags).where(t.tags.c.name == name).values(**values))
            work.detail = f"manual tag={name} taxonomy={taxonomy}"

    def assign_tag(self, ctx: AccessContext, tag: str, profile_ids: Iterable[str]) -> int:
        """Put a manual tag on profiles (active ones only); returns how many newly hold it."""
        wanted = sorted(set(profile_ids))
        with self.access(ctx, action="write", resource="profile_tags", fields=("tags", "profile_id")) as work:
            conn = work.connection
            self._manual_tag(conn, tag)
            active: set[str] = set()
            held: set[str] = set()
            for chunk in _chunks(wanted):
                active.update(
                    conn.execute(
                        select(t.profiles.c.id).where(t.profiles.c.id.in_(chunk), t.profiles.c.status == "active")
                    ).scalars()
                )
                held.update(
                    conn.execute(
                        select(t.profile_tags.c.profile_id).where(
                            t.profile_tags.c.tag == tag,
                            t.profile_tags.c.profile_id.in_(chunk),
                            t.profile_tags.c.removed_at.is_(None),
                        )
                    ).scalars()
                )
            unknown = [p for p in wanted if p not in active]
            if unknown:
                raise NotFound(f"{len(unknown)} profile id(s) are unknown or no longer active, e.g. {unknown[0]}")
            fresh = [p for p in wanted if p not in held]
            if fresh:
                stamp = now()
                conn.execute(
                    insert(t.profile_tags),
                    [{"profile_id": p, "tag": tag, "assigned_by": ctx.actor, "assigned_at": stamp} for p in fresh],
                )
            work.touch(fresh)
            work.detail = f"manual tag={tag} assigned={len(fresh)}"
            return len(fresh)

    def remove_tag(self, ctx: AccessContext, tag: str, profile_ids: Iterable[str]) -> int:
        """Take a manual tag off profiles; returns how many held it."""
        wanted = sorted(set(profile_ids))
        with self.access(ctx, action="write", resource="profile_tags", fields=("tags", "profile_id")) as work:
            conn = work.connection
            self._manual_tag(conn, tag)
            removed = 0
            stamp = now()
            for chunk in _chunks(wanted):
                result = conn.execute(
                    update(t.profile_tags)
                    .where(
                        t.profile_tags.c.tag == tag,
                        t.profile_tags.c.profile_id.in_(chunk),
                        t.profile_tags.c.removed_at.is_(None),
                    )
                    .values(removed_at=stamp)
                )
                removed += int(result.rowcount or 0)
            work.touch(wanted)
            work.detail = f"manual tag={tag} removed={removed}"
            return removed

    def tag_history(
        self, ctx: AccessContext, *, profile_id: str | None = None, tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Assignments (current and past) with who and when, newest first."""
        with self.access(ctx, action="read", resource="profile_tags", fields=("tags", "profile_id")) as work:
            query = select(
                t.profile_tags.c.profile_id,
                t.profile_tags.c.tag,
                t.profile_tags.c.assigned_by,
                t.profile_tags.c.assigned_at,
                t.profile_tags.c.removed_at,
            )
            if profile_id is not None:
                query = query.where(t.profile_tags.c.profile_id == profile_id)
            if tag is not None:
                query = query.where(t.profile_tags.c.tag == tag)
            rows = [dict(r._mapping) for r in work.connection.execute(query.order_by(t.profile_tags.c.id.desc()))]
            work.touch(r["profile_id"] for r in rows)
            return rows
