"""Refreshing attributes, tags and segments from a policy-checked snapshot.

One snapshot is taken through the access layer (classifier service identity,
purpose ``profiling``): events without identifiers, and profile attributes
with direct identifiers denied or generalised. Tags and segment memberships
computed from it are written back through the access layer with history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import yaml

from cdp._exceptions import DefinitionError
from cdp.access import CustomerStore
from cdp.access.context import classifier_context
from cdp.segments.attributes import compute_attributes
from cdp.segments.definition import Segment, parse_segment
from cdp.segments.engine import SegmentEngine
from cdp.segments.tags import builtin_tags

PROFILE_ATTRIBUTE_FIELDS = ("country", "state", "city", "gender", "age_band", "sources", "record_count")


@dataclass(frozen=True)
class RefreshReport:
    profiles: int
    tags: dict[str, tuple[int, int, int]]  # tag -> (holders, gained, lost)
    segments: dict[str, tuple[int, int, int]]  # segment -> (size, entered, exited)


def load_segment_file(path: Path) -> Segment:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"not valid YAML: {exc}", file=str(path)) from exc
    return parse_segment(document, source=str(path))


def snapshot(store: CustomerStore, *, as_of: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(attributes per profile, events) through the access layer."""
    ctx = classifier_context("profiling")
    events = store.events_frame(ctx)
    computed = compute_attributes(events, as_of=as_of)
    profile_frame = store.profile_frame(ctx, PROFILE_ATTRIBUTE_FIELDS, today=as_of.date())
    if computed.height == 0:
        return profile_frame, events
    attributes = profile_frame.join(computed, on="profile_id", how="left")
    return attributes, events.filter(pl.col("profile_id").is_in(attributes["profile_id"].implode()))


def refresh(store: CustomerStore, segments: Sequence[Segment], *, as_of: datetime | None = None) -> RefreshReport:
    moment = as_of or datetime.now(UTC)
    ctx = classifier_context("profiling")
    attributes, events = snapshot(store, as_of=moment)
    tag_report: dict[str, tuple[int, int, int]] = {}
    for tag, (taxonomy, holders) in builtin_tags(attributes).items():
        store.define_tag(ctx, tag, taxonomy=taxonomy, kind="rule", description="built-in rule")
        gained, lost = store.sync_tag(ctx, tag, holders, assigned_by="rule:builtin")
        tag_report[tag] = (len(holders), gained, lost)
    held = store.profile_tags(ctx)
    tags = pl.DataFrame(
        [(p, tag) for p, names in held.items() for tag in names],
        schema={"profile_id": pl.String, "tag": pl.String},
        orient="row",
    )
    engine = SegmentEngine(attributes, events, tags, as_of=moment)
    segment_report: dict[str, tuple[int, int, int]] = {}
    try:
        for segment in segments:
            members = engine.members(segment)
            store.save_segment(
                ctx,
                segment.name,
                {"description": segment.description, "purpose": segment.purpose, "where": dict(segment.where)},
            )
            segment_report[segment.name] = store.sync_membership(ctx, segment.name, members)
    finally:
        engine.close()
    return RefreshReport(attributes.height, tag_report, segment_report)


def segments_from(paths: Sequence[Path] | Mapping[str, Segment]) -> list[Segment]:
    if isinstance(paths, Mapping):
        return list(paths.values())
    return [load_segment_file(p) for p in paths]
