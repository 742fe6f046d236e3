"""Evaluating compiled segments on DuckDB over in-memory Polars/Arrow frames.

The frames come from the access layer (policy-checked, no direct
identifiers). DuckDB runs in memory only: nothing is spilled to a file in the
data directory, so no plaintext can land in a DuckDB file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from cdp.segments.definition import CompiledSegment, Segment, column_kinds, compile_segment


def _bind(params: list[Any], as_of: datetime) -> list[Any]:
    return [as_of - timedelta(days=int(p["days"])) if isinstance(p, dict) else p for p in params]


class SegmentEngine:
    """Holds one snapshot (attributes, tags, events) and evaluates segments over it."""

    def __init__(self, attributes: pl.DataFrame, events: pl.DataFrame, tags: pl.DataFrame, *, as_of: datetime) -> None:
        self.as_of = as_of
        self.columns = column_kinds([(n, str(t)) for n, t in attributes.schema.items()])
        self.analytics = duckdb.connect(":memory:", config={"enable_external_access": False})
        self.analytics.register("attrs", attributes.to_arrow())
        self.analytics.register(
            "events", events.select("profile_id", "event_name", "occurred_at", "revenue").to_arrow()
        )
        self.analytics.register("tags", tags.to_arrow())

    def compile(self, segment: Segment) -> CompiledSegment:
        return compile_segment(segment, self.columns)

    def members(self, segment: Segment) -> list[str]:
        compiled = self.compile(segment)
        rows = self.analytics.execute(compiled.sql, _bind(compiled.params, self.as_of)).fetchall()
        return [str(r[0]) for r in rows]

    def evaluate_all(self, segments: Mapping[str, Segment]) -> dict[str, list[str]]:
        return {name: self.members(segment) for name, segment in segments.items()}

    def close(self) -> None:
        self.analytics.close()
