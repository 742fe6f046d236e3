"""Retention enforcement and the inventory behind the records of processing.

Retention rules come from ``policies/fields.yaml`` (``retention``): keys are
``events:<source>`` (behavioural events of a source), ``records:<source>``
(source records and their events) or ``quarantine``; values are days. A dry
run counts what would go; a real run deletes it; both are audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from cdp.access import _tables as t
from cdp.access._analytic_cache import shred_analytic_copies
from cdp.access._core import StoreCore, now
from cdp.access.context import AccessContext
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS


class RetentionMixin(StoreCore):
    def apply_retention(self, ctx: AccessContext, *, dry_run: bool, at: datetime | None = None) -> list[dict[str, Any]]:
        moment = at or now()
        rules = self.policy.policy.retention
        action = "read" if dry_run else "erase"
        with self.access(ctx, action=action, resource="retention", fields=("record_id",)) as work:
            conn = work.connection
            report: list[dict[str, Any]] = []
            for key, days in sorted(rules.items()):
                cutoff = moment - timedelta(days=days)
                scope, _, source = key.partition(":")
                if scope == "events":
                    condition: Any = (t.events.c.source == source) & (t.events.c.occurred_at < cutoff)
                    count = int(conn.execute(select(func.count()).select_from(t.events).where(condition)).scalar() or 0)
                    if not dry_run and count:
                        conn.execute(delete(t.events).where(condition))
                elif scope == "records":
                    condition = (t.records.c.source == source) & (t.records.c.received_at < cutoff)
                    ids = list(conn.execute(select(t.records.c.id).where(condition)).scalars())
                    count = len(ids)
                    if not dry_run:
                        for start in range(0, len(ids), 900):
                            chunk = ids[start : start + 900]
                            for table in (t.events, t.blind_indexes, t.record_links):
                                conn.execute(delete(table).where(table.c.record_id.in_(chunk)))
                            conn.execute(delete(t.records).where(t.records.c.id.in_(chunk)))
                        if ids:  # derived copies (birth-year cache) of the deleted records go too
                            shred_analytic_copies(self, conn)
                elif scope == "quarantine":
                    condition = t.quarantine.c.received_at < cutoff
                    count = int(
                        conn.execute(select(func.count()).select_from(t.quarantine).where(condition)).scalar() or 0
                    )
                    if not dry_run and count:
                        conn.execute(delete(t.quarantine).where(condition))
                else:
                    continue
                report.append(
                    {
                        "rule": key,
                        "days": days,
                        "cutoff": cutoff.isoformat(),
                        "affected": count,
                        "deleted": 0 if dry_run else count,
                    }
                )
            work.subject_count = sum(r["affected"] for r in report)
            work.detail = ("dry run: " if dry_run else "") + ", ".join(f"{r['rule']}={r['affected']}" for r in report)
            return report

    def processing_inventory(self, ctx: AccessContext) -> dict[str, Any]:
        """Counts (never values) of what is held, per source and field, and where it went."""
        with self.access(ctx, action="read", resource="inventory", fields=("record_count",)) as work:
            conn = work.connection
            sources: dict[str, dict[str, int]] = {}
            names = ["records", *IDENTITY_FIELDS, *CLEAR_FIELDS]
            columns = [func.count()]
            columns += [func.count(t.records.c[f"{n}_enc"]) for n in IDENTITY_FIELDS]
            columns += [func.count(t.records.c[n]) for n in CLEAR_FIELDS]
            for source, *counts in conn.execute(select(t.records.c.source, *columns).group_by(t.records.c.source)):
                sources[str(source)] = {name: int(n) for name, n in zip(names, counts, strict=True)}
            events = {
                s: int(n) for s, n in conn.execute(select(t.events.c.source, func.count()).group_by(t.events.c.source))
            }
            destinations = {
                f"{d} ({seg})": int(n)
                for d, seg, n in conn.execute(
                    select(t.exports.c.destination, t.exports.c.segment, func.sum(t.exports.c.member_count)).group_by(
                        t.exports.c.destination, t.exports.c.segment
                    )
                )
            }
            consents = {
                f"{p}:{s}": int(n)
                for p, s, n in conn.execute(
                    select(t.consents.c.purpose, t.consents.c.status, func.count()).group_by(
                        t.consents.c.purpose, t.consents.c.status
                    )
                )
            }
            return {"sources": sources, "events": events, "destinations": destinations, "consents": consents}
