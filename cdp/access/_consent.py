"""The consent ledger and the data-subject request register.

The ledger is append-only: a change of mind is a new row, never an update,
and the current state per person and purpose is derived from it (latest row
wins). Data-subject requests carry their legal deadline and state; every
change is audited like any other access.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from cdp._exceptions import InputError, NotFound
from cdp.access import _tables as t
from cdp.access._core import new_id, now
from cdp.access._profiles import ProfileMixin
from cdp.access.context import AccessContext
from cdp.model import CONSENT_STATUSES, LAWFUL_BASES

DSR_KINDS = frozenset({"access", "erasure", "rectification", "restriction", "objection"})
DSR_STATES = ("received", "verified", "in_progress", "done", "rejected")
_TRANSITIONS = {
    "received": {"verified", "rejected"},
    "verified": {"in_progress", "rejected"},
    "in_progress": {"done", "rejected"},
    "done": set(),
    "rejected": set(),
}


class ConsentMixin(ProfileMixin):
    def record_consent(
        self,
        ctx: AccessContext,
        profile_id: str,
        *,
        purpose: str,
        status: str,
        basis: str = "consent",
        source: str = "api",
        notice_version: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> int:
        """Append one consent decision for a person (attached to their most recent record)."""
        if status not in CONSENT_STATUSES:
            raise InputError(f"field 'status': must be one of {sorted(CONSENT_STATUSES)}")
        if basis not in LAWFUL_BASES:
            raise InputError(f"field 'basis': must be one of {sorted(LAWFUL_BASES)}")
        if purpose not in {p.consent for p in self.policy.policy.purposes.values() if p.consent}:
            raise InputError(f"field 'purpose': {purpose!r} is not a consent purpose in policies/purposes.yaml")
        with self.access(ctx, action="write", resource="consents", fields=("consent", "profile_id")) as work:
            conn = work.connection
            row = conn.execute(
                select(t.records.c.id, t.records.c.country, t.records.c.state)
                .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
                .where(t.record_links.c.profile_id == profile_id, t.record_links.c.unlinked_at.is_(None))
                .order_by(t.records.c.received_at.desc())
                .limit(1)
            ).first()
            if row is None:
                raise NotFound(f"no profile {profile_id} with records")
            result = conn.execute(
                insert(t.consents).values(
                    record_id=row.id,
                    subject_key=None,
                    purpose=purpose,
                    status=status,
                    basis=basis,
                    source=source,
                    notice_version=notice_version,
                    jurisdiction=self.policy.policy.jurisdiction_of(row.country, row.state),
                    recorded_at=now(),
                    evidence=evidence or None,
                )
            )
            work.touch([profile_id])
            work.detail = f"consent {purpose}={status} basis={basis}"
            return int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0

    def consent_state(self, ctx: AccessContext, profile_id: str) -> dict[str, str]:
        """Current status per consent purpose for one person."""
        with self.access(ctx, action="read", resource="consents", fields=("consent", "profile_id")) as work:
            out: dict[str, str] = {}
            for purpose in sorted({p.consent for p in self.policy.policy.purposes.values() if p.consent}):
                status = self.consent_states(work.connection, purpose, [profile_id]).get(profile_id)
                if status:
                    out[purpose] = status
            work.touch([profile_id])
            return out

    # -- data-subject requests --------------------------------------------------------------------

    def open_request(
        self, ctx: AccessContext, *, kind: str, regime: str, deadline_days: int, detail: dict[str, Any]
    ) -> str:
        if kind not in DSR_KINDS:
            raise InputError(f"field 'kind': must be one of {sorted(DSR_KINDS)}")
        with self.access(ctx, action="write", resource="dsr_requests", fields=("profile_id",)) as work:
            request_id = new_id("dsr")
            stamp = now()
            work.connection.execute(
                insert(t.dsr_requests).values(
                    id=request_id,
                    kind=kind,
                    status="received",
                    regime=regime,
                    profile_id=None,
                    received_at=stamp,
                    due_at=stamp + timedelta(days=deadline_days),
                    updated_at=stamp,
                    actor=ctx.actor,
                    detail=detail,
                )
            )
            work.detail = f"request {request_id} {kind} {regime}"
            return request_id

    def advance_request(
        self, ctx: AccessContext, request_id: str, status: str, *, profile_id: str | None = None, note: str = ""
    ) -> None:
        with self.access(ctx, action="write", resource="dsr_requests", fields=("profile_id",)) as work:
            conn = work.connection
            row = conn.execute(select(t.dsr_requests).where(t.dsr_requests.c.id == request_id)).first()
            if row is None:
                raise NotFound(f"no data-subject request {request_id}")
            if status not in _TRANSITIONS[row.status]:
                raise InputError(f"request {request_id} cannot go from {row.status} to {status}")
            detail = dict(row.detail or {})
            if note:
                detail.setdefault("log", []).append({"at": now().isoformat(), "status": status, "note": note})
            values: dict[str, Any] = {"status": status, "updated_at": now(), "detail": detail}
            if profile_id:
                values["profile_id"] = profile_id
            conn.execute(update(t.dsr_requests).where(t.dsr_requests.c.id == request_id).values(**values))
            if profile_id or row.profile_id:
                work.touch([profile_id or row.profile_id])
            work.detail = f"request {request_id}: {row.status} -> {status}"

    def requests(self, ctx: AccessContext, *, overdue_at: datetime | None = None) -> list[dict[str, Any]]:
        with self.access(ctx, action="read", resource="dsr_requests", fields=("profile_id",)) as work:
            query = select(t.dsr_requests).order_by(t.dsr_requests.c.due_at)
            if overdue_at is not None:
                query = query.where(
                    t.dsr_requests.c.due_at < overdue_at, t.dsr_requests.c.status.not_in(("done", "rejected"))
                )
            rows = [dict(r._mapping) for r in work.connection.execute(query)]
            work.subject_count = len({r["profile_id"] for r in rows if r["profile_id"]})
            return rows

    def get_request(self, ctx: AccessContext, request_id: str) -> dict[str, Any]:
        with self.access(ctx, action="read", resource="dsr_requests", fields=("profile_id",)) as work:
            row = work.connection.execute(select(t.dsr_requests).where(t.dsr_requests.c.id == request_id)).first()
            if row is None:
                raise NotFound(f"no data-subject request {request_id}")
            return dict(row._mapping)
