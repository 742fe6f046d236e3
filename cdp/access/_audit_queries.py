"""Audit-log reads for compliance officers: verify the chain and search it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cdp.access import _tables as t
from cdp.access import audit
from cdp.access._core import StoreCore
from cdp.access.context import AccessContext

AUDIT_FIELDS = ("record_id", "profile_id")


class AuditMixin(StoreCore):
    def verify_audit(self, ctx: AccessContext) -> audit.VerifyResult:
        with self.access(ctx, action="audit", resource="audit_log", fields=AUDIT_FIELDS) as work:
            result = audit.verify(work.connection, self.checkpoints_file, self.signer.public_key_hex())
            work.detail = f"verify ok={result.ok} checked={result.checked}"
            return result

    def search_audit(
        self,
        ctx: AccessContext,
        *,
        actor: str | None = None,
        subject: str | None = None,
        purpose: str | None = None,
        decision: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        with self.access(ctx, action="audit", resource="audit_log", fields=AUDIT_FIELDS) as work:
            query = select(t.audit_log).order_by(t.audit_log.c.seq.desc())
            if actor:
                query = query.where(t.audit_log.c.actor == actor)
            if purpose:
                query = query.where(t.audit_log.c.purpose == purpose)
            if decision:
                query = query.where(t.audit_log.c.decision == decision)
            if action:
                query = query.where(t.audit_log.c.action == action)
            if since:
                query = query.where(t.audit_log.c.at >= since.isoformat())
            if until:
                query = query.where(t.audit_log.c.at <= until.isoformat())
            if subject:
                query = query.where(t.audit_log.c.subjects.contains(json.dumps(subject)))
            rows = [dict(r._mapping) for r in work.connection.execute(query.limit(limit))]
            for row in rows:
                row["fields"] = json.loads(row["fields"])
                row["subjects"] = json.loads(row["subjects"])
            work.detail = f"search returned={len(rows)}"
            return rows
