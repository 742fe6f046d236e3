"""Read-only views: the customer 360 of one profile, consent states, segment catalogue and history.

``profile_view`` gathers what cdp knows about one person for an operator:
the golden attributes with the source each came from (through
``read_profiles``, so masking and the consent row filter apply), the
identifiers of every linked record masked per role, the event timeline,
purchases, survey answers, the consent ledger, tags (with who and when) and
segment memberships (with entered and exited). Each section appears only if
the policy lets the role read its field; the whole view is one audited
access besides the golden record's own.

The segment views return aggregates or pseudonymous ids only, for insight
tables and charts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

import polars as pl
from sqlalchemy import Connection, func, select

from cdp._exceptions import NotFound
from cdp.access import _tables as t
from cdp.access._core import StoreCore
from cdp.access.context import AccessContext
from cdp.policy import Decision
from cdp.policy.masking import apply_treatment

VIEW_IDENTIFIERS = ("email", "phone", "loyalty_id", "user_id")
GOLDEN_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "date_of_birth",
    "age_band",
    "street",
    "postcode",
    "city",
    "state",
    "country",
    "gender",
    "sources",
    "record_count",
    "first_seen",
    "last_seen",
)
EVENT_COLUMNS = ("event_type", "event_name", "occurred_at", "revenue", "currency", "channel", "store_id", "category")
SURVEY_FIELDS = ("nps", "csat", "interests", "sentiment")
_EPOCH = datetime(1970, 1, 1)
VIEW_FIELDS = (*VIEW_IDENTIFIERS, *EVENT_COLUMNS, *SURVEY_FIELDS, "source", "tags", "segments", "consent")


class _ProfileReader(Protocol):
    """The part of ``ProfileMixin`` the 360 view uses (composed into the same CustomerStore)."""

    def read_profiles(
        self,
        ctx: AccessContext,
        fields: Iterable[str],
        *,
        profile_ids: Sequence[str] | None = None,
        with_provenance: bool = False,
    ) -> list[dict[str, Any]]: ...


class ProfileViewMixin(StoreCore):
    # -- customer 360 ---------------------------------------------------------------------------

    def profile_view(
        self, ctx: AccessContext, profile_id: str, *, timeline_limit: int = 50, fields: Sequence[str] = GOLDEN_FIELDS
    ) -> dict[str, Any]:
        reader = cast(_ProfileReader, self)
        golden_rows = reader.read_profiles(ctx, fields, profile_ids=[profile_id], with_provenance=True)
        with self.access(ctx, action="read", resource="profile_view", fields=VIEW_FIELDS) as work:
            conn = work.connection
            row = conn.execute(
                select(t.profiles.c.status, t.profiles.c.merged_into).where(t.profiles.c.id == profile_id)
            ).first()
            if row is None:
                raise NotFound(f"no profile {profile_id}")
            if row.status != "active":
                target = f": merged into {row.merged_into}" if row.merged_into else ""
                raise NotFound(f"profile {profile_id} is {row.status}{target}")
            if not golden_rows:
                raise NotFound(f"profile {profile_id} has no record this role may see for purpose {ctx.purpose!r}")
            golden = dict(golden_rows[0])
            provenance = golden.pop("_provenance", {})
            decision = work.decision
            view: dict[str, Any] = {
                "profile_id": profile_id,
                "golden": [
                    {"field": k, "value": v, "source": provenance.get(k, "")}
                    for k, v in golden.items()
                    if k != "profile_id"
                ],
                "records": self._view_records(conn, decision, profile_id),
            }
            allowed = {name for name, rule in decision.fields.items() if rule.allowed}
            if {"event_name", "occurred_at"} <= allowed:
                view["timeline"] = self._view_events(conn, decision, profile_id, None, timeline_limit)
                view["purchases"] = self._view_events(conn, decision, profile_id, "Order Completed", 1000)
                view["surveys"] = self._view_surveys(conn, decision, profile_id)
            if "consent" in allowed:
                view["consents"] = self._view_consents(conn, profile_id)
            if "tags" in allowed:
                view["tags"] = self._view_tags(conn, profile_id)
            if "segments" in allowed:
                view["segments"] = self._view_segments(conn, profile_id)
            work.touch([profile_id])
            work.detail = "customer 360 view"
            return view

    def _view_records(self, conn: Connection, decision: Decision, profile_id: str) -> list[dict[str, Any]]:
        readable = [f for f in VIEW_IDENTIFIERS if decision.fields[f].allowed]
        rows = conn.execute(
            select(t.records)
            .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
            .where(
                t.record_links.c.profile_id == profile_id,
                t.record_links.c.unlinked_at.is_(None),
                t.records.c.status == "active",
            )
            .order_by(t.records.c.occurred_at)
        ).all()
        live_keys = self.load_ciphers(conn, {r.key_id for r in rows})
        out: list[dict[str, Any]] = []
        for r in rows:
            item: dict[str, Any] = {"source": r.source, "kind": r.kind, "occurred_at": r.occurred_at}
            # A record whose key was crypto-shredded is listed, with no identifier and a mark saying why.
            live = r.key_id in live_keys
            for name in readable:
                token = getattr(r, f"{name}_enc")
                value = self.decrypt_or_none(conn, r.key_id, token, r.id, name) if token is not None and live else None
                item[name] = apply_treatment(decision.fields[name].treatment, name, value)
            if not live:
                item["shredded"] = True
            out.append(item)
        return out

    def _view_events(
        self, conn: Connection, decision: Decision, profile_id: str, name: str | None, limit: int
    ) -> list[dict[str, Any]]:
        columns = [c for c in EVENT_COLUMNS if decision.fields[c].allowed]
        query = select(*(t.events.c[c] for c in columns)).where(t.events.c.profile_id == profile_id)
        if name is not None:
            query = query.where(t.events.c.event_name == name)
        rows = conn.execute(query.order_by(t.events.c.occurred_at.desc()).limit(limit)).all()
        return [
            {c: apply_treatment(decision.fields[c].treatment, c, v) for c, v in zip(columns, r, strict=True)}
            for r in rows
        ]

    def _view_surveys(self, conn: Connection, decision: Decision, profile_id: str) -> list[dict[str, Any]]:
        readable = [f for f in SURVEY_FIELDS if decision.fields[f].allowed]
        rows = conn.execute(
            select(t.events.c.occurred_at, t.events.c.properties)
            .where(t.events.c.profile_id == profile_id, t.events.c.event_type == "survey")
            .order_by(t.events.c.occurred_at.desc())
        ).all()
        out: list[dict[str, Any]] = []
        for occurred_at, properties in rows:
            props = properties if isinstance(properties, dict) else {}
            item: dict[str, Any] = {"occurred_at": occurred_at}
            for field in readable:
                value = props.get(field)
                if isinstance(value, list):
                    value = ";".join(str(v) for v in value)
                item[field] = apply_treatment(decision.fields[field].treatment, field, value)
            out.append(item)
        return out

    def _view_consents(self, conn: Connection, profile_id: str) -> list[dict[str, Any]]:
        c = t.consents
        rows = conn.execute(
            select(
                c.c.purpose, c.c.status, c.c.basis, c.c.source, c.c.recorded_at, c.c.notice_version, c.c.jurisdiction
            )
            .join(t.record_links, t.record_links.c.record_id == c.c.record_id)
            .where(t.record_links.c.profile_id == profile_id, t.record_links.c.unlinked_at.is_(None))
            .order_by(c.c.recorded_at.desc(), c.c.id.desc())
        ).all()
        return [dict(r._mapping) for r in rows]

    def _view_tags(self, conn: Connection, profile_id: str) -> list[dict[str, Any]]:
        pt = t.profile_tags
        rows = conn.execute(
            select(pt.c.tag, t.tags.c.taxonomy, t.tags.c.kind, pt.c.assigned_by, pt.c.assigned_at, pt.c.removed_at)
            .join(t.tags, t.tags.c.name == pt.c.tag)
            .where(pt.c.profile_id == profile_id)
            .order_by(pt.c.removed_at.is_not(None), pt.c.tag, pt.c.assigned_at.desc())
        ).all()
        return [dict(r._mapping) for r in rows]

    def _view_segments(self, conn: Connection, profile_id: str) -> list[dict[str, Any]]:
        m = t.segment_memberships
        rows = conn.execute(
            select(m.c.segment, m.c.entered_at, m.c.exited_at)
            .where(m.c.profile_id == profile_id)
            .order_by(m.c.exited_at.is_not(None), m.c.segment, m.c.entered_at.desc())
        ).all()
        return [dict(r._mapping) for r in rows]

    # -- consent states for segment conditions --------------------------------------------------

    def consent_frame(self, ctx: AccessContext, purposes: Iterable[str]) -> pl.DataFrame:
        """profile_id, purpose, status: the latest ledger status per profile and consent purpose."""
        wanted = sorted(set(purposes))
        c = t.consents
        with self.access(ctx, action="read", resource="consents", fields=("profile_id", "consent")) as work:
            rows = work.connection.execute(
                select(t.record_links.c.profile_id, c.c.purpose, c.c.status, c.c.recorded_at, c.c.id)
                .join(t.record_links, t.record_links.c.record_id == c.c.record_id)
                .where(c.c.purpose.in_(wanted), t.record_links.c.unlinked_at.is_(None))
            ).all()
            latest: dict[tuple[str, str], tuple[datetime, int, str]] = {}
            for profile_id, purpose, status, recorded_at, seq in rows:
                stamp = (recorded_at.replace(tzinfo=None) if recorded_at else _EPOCH, int(seq))
                key = (profile_id, purpose)
                if key not in latest or stamp > latest[key][:2]:
                    latest[key] = (stamp[0], stamp[1], status)
            work.subject_count = len({p for p, _ in latest})
            return pl.DataFrame(
                [(p, purpose, v[2]) for (p, purpose), v in sorted(latest.items())],
                schema={"profile_id": pl.String, "purpose": pl.String, "status": pl.String},
                orient="row",
            )

    # -- segments -------------------------------------------------------------------------------

    def segment_catalogue(self, ctx: AccessContext) -> list[dict[str, Any]]:
        """Stored segments with version, purpose, description, author and current size."""
        with self.access(ctx, action="read", resource="segments", fields=("segments",)) as work:
            conn = work.connection
            sizes = self._sizes(conn)
            rows = conn.execute(
                select(
                    t.segments.c.name,
                    t.segments.c.version,
                    t.segments.c.definition,
                    t.segments.c.created_by,
                    t.segments.c.created_at,
                ).order_by(t.segments.c.name)
            ).all()
            out: list[dict[str, Any]] = []
            for r in rows:
                definition = r.definition if isinstance(r.definition, dict) else {}
                out.append(
                    {
                        "name": r.name,
                        "version": r.version,
                        "purpose": definition.get("purpose", ""),
                        "description": definition.get("description", ""),
                        "definition": definition,
                        "created_by": r.created_by,
                        "created_at": r.created_at,
                        "size": sizes.get(r.name, 0),
                    }
                )
            return out

    def _sizes(self, conn: Connection) -> dict[str, int]:
        m = t.segment_memberships
        rows = conn.execute(select(m.c.segment, func.count()).where(m.c.exited_at.is_(None)).group_by(m.c.segment))
        return {segment: int(n) for segment, n in rows}

    def segment_sizes(self, ctx: AccessContext) -> dict[str, int]:
        with self.access(ctx, action="read", resource="segment_memberships", fields=("segments",)) as work:
            return self._sizes(work.connection)

    def segment_size_history(self, ctx: AccessContext) -> pl.DataFrame:
        """segment, at, size: the size of every segment after each refresh that changed it."""
        m = t.segment_memberships
        with self.access(ctx, action="read", resource="segment_memberships", fields=("segments",)) as work:
            conn = work.connection
            changes: dict[tuple[str, datetime], int] = defaultdict(int)
            for segment, at, n in conn.execute(
                select(m.c.segment, m.c.entered_at, func.count()).group_by(m.c.segment, m.c.entered_at)
            ):
                changes[(segment, at)] += int(n)
            for segment, at, n in conn.execute(
                select(m.c.segment, m.c.exited_at, func.count())
                .where(m.c.exited_at.is_not(None))
                .group_by(m.c.segment, m.c.exited_at)
            ):
                changes[(segment, at)] -= int(n)
        rows: list[tuple[str, datetime, int]] = []
        size: dict[str, int] = defaultdict(int)
        for (segment, at), delta in sorted(changes.items(), key=lambda kv: (kv[0][0], kv[0][1].replace(tzinfo=None))):
            size[segment] += delta
            rows.append((segment, at, size[segment]))
        return pl.DataFrame(
            rows, schema={"segment": pl.String, "at": pl.Datetime("us", "UTC"), "size": pl.Int64}, orient="row"
        )

    def membership_frame(self, ctx: AccessContext, segments: Sequence[str] | None = None) -> pl.DataFrame:
        """segment, profile_id of current members (all segments, or the ones named)."""
        m = t.segment_memberships
        with self.access(ctx, action="read", resource="segment_memberships", fields=("segments", "profile_id")) as work:
            query = select(m.c.segment, m.c.profile_id).where(m.c.exited_at.is_(None))
            if segments is not None:
                query = query.where(m.c.segment.in_(list(segments)))
            rows = [tuple(r) for r in work.connection.execute(query)]
            work.subject_count = len({r[1] for r in rows})
            return pl.DataFrame(rows, schema={"segment": pl.String, "profile_id": pl.String}, orient="row")
