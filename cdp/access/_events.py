"""Reading behavioural events for analytics (segments, insights).

Split out of ``_profiles.py`` (issue #7): the events read is the largest read a
segment refresh makes (every event of every active profile), and making it fast
is its own piece of work; keeping it in its own mixin lets that change without
touching the profile read path. It goes through ``StoreCore.access`` like every
other read: policy decision on the ``events`` resource and an audit record.
"""

from __future__ import annotations

import json

import polars as pl
from sqlalchemy import select

from cdp.access import _tables as t
from cdp.access._core import StoreCore
from cdp.access.context import AccessContext

EVENT_FIELDS = (
    "profile_id",
    "event_type",
    "event_name",
    "occurred_at",
    "revenue",
    "currency",
    "channel",
    "store_id",
    "category",
)


class EventMixin(StoreCore):
    def events_frame(self, ctx: AccessContext) -> pl.DataFrame:
        """Behavioural events of resolved profiles, for analytics (no identifiers)."""
        fields = (*EVENT_FIELDS, "event_properties")
        with self.access(ctx, action="read", resource="events", fields=fields) as work:
            rows = work.connection.execute(
                select(*(t.events.c[name] for name in EVENT_FIELDS), t.events.c.properties)
                .join(t.profiles, t.profiles.c.id == t.events.c.profile_id)
                .where(t.profiles.c.status == "active")
            ).all()
            # properties hold only keys classified in fields.yaml (event_properties), as JSON text
            frame = pl.DataFrame(
                [(*r[:-1], json.dumps(r[-1], sort_keys=True) if r[-1] else None) for r in rows],
                schema={
                    "profile_id": pl.String,
                    "event_type": pl.String,
                    "event_name": pl.String,
                    "occurred_at": pl.Datetime("us", "UTC"),
                    "revenue": pl.Float64,
                    "currency": pl.String,
                    "channel": pl.String,
                    "store_id": pl.String,
                    "category": pl.String,
                    "properties": pl.String,
                },
                orient="row",
            )
            work.subject_count = frame["profile_id"].n_unique() if frame.height else 0
            return frame
