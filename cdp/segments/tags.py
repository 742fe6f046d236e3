"""Rule tags from the tags file, and writing tags back to the store with history.

Rule tags are declared in the tags file with a taxonomy (basic, behavioural,
interest, value) and a condition in the segment grammar (attributes,
classifier tags, manual tags, earlier rule tags, event history). They are
evaluated after the classifiers on every refresh, in file order.

Writing is incremental: a tag whose holders are unchanged since the last
refresh (same digest in the refresh state and same count in the store) is
not re-synced; a rule tag that no classifier or rule produces any more is
synced to empty so its holders lose it. Manual tags are never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from cdp.access.context import AccessContext
from cdp.segments.classify.base import TagSpec
from cdp.segments.config import RuleTag, TagsConfig
from cdp.segments.definition import Segment, compile_segment

if TYPE_CHECKING:
    from cdp.access import CustomerStore
    from cdp.segments.engine import SegmentEngine

RULE_ACTOR = "rule:"


def digest_ids(ids: pl.Series) -> str:
    """A stable digest of a set of profile ids (order does not matter)."""
    text = "\n".join(ids.unique().sort().cast(pl.String).to_list())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def evaluate_rule_tags(engine: SegmentEngine, rules: tuple[RuleTag, ...], config: TagsConfig) -> pl.DataFrame:
    """profile_id, tag for every rule tag (each rule sees the tags of the rules above it)."""
    parts: list[pl.DataFrame] = []
    names = {r.name for r in rules}
    for i, rule in enumerate(rules):
        segment = Segment(f"rule_{i}", rule.description, "profiling", rule.where, config.source)
        compiled = compile_segment(
            segment, engine.columns, purposes=engine.purposes, segments=(), root=f"rules[{i}].where"
        )
        members = engine.run(compiled)
        frame = pl.DataFrame({"profile_id": members}).with_columns(pl.lit(rule.name).alias("tag"))
        parts.append(frame)
        if any(r.name in names for r in rules[i + 1 :]):
            engine.add_tags(frame)
    return pl.concat(parts) if parts else pl.DataFrame(schema={"profile_id": pl.String, "tag": pl.String})


@dataclass(frozen=True)
class TagWrite:
    holders: int
    gained: int
    lost: int
    skipped: bool


def apply_tags(
    store: CustomerStore,
    ctx: AccessContext,
    tags: pl.DataFrame,
    catalogue: Mapping[str, TagSpec],
    origin: Mapping[str, str],
    *,
    state: dict[str, Any],
    full: bool = False,
    manual: Collection[str] = (),
) -> dict[str, TagWrite]:
    """Sync every rule tag of the catalogue to its holders in ``tags``; updates ``state`` in place."""
    known = store.tag_definitions(ctx)
    counts = store.tag_counts(ctx)
    grouped = {str(k[0]): v["profile_id"] for k, v in tags.group_by("tag") if k[0] in catalogue}
    stale = [name for name, d in known.items() if d["kind"] == "rule" and name not in catalogue and counts.get(name)]
    previous: dict[str, Any] = state.setdefault("tags", {})
    report: dict[str, TagWrite] = {}
    for name in sorted(catalogue):
        if name in manual:
            continue
        spec = catalogue[name]
        holders = grouped.get(name, pl.Series(dtype=pl.String))
        digest = digest_ids(holders)
        definition = {"taxonomy": spec.taxonomy, "description": spec.description, "by": origin.get(name, "")}
        entry = previous.get(name, {})
        current = known.get(name)
        if current is None and holders.len() == 0:
            continue  # never held, nothing to lose: defined when first assigned
        if current is None or entry.get("definition") != definition or full:
            store.define_tag(
                ctx,
                name,
                taxonomy=spec.taxonomy,
                kind="rule",
                description=spec.description,
                definition={"classifier": origin.get(name, "")},
            )
        if not full and entry.get("digest") == digest and counts.get(name, 0) == holders.len():
            report[name] = TagWrite(holders.len(), 0, 0, True)
        else:
            gained, lost = store.sync_tag(
                ctx, name, holders.to_list(), assigned_by=f"{RULE_ACTOR}{origin.get(name, 'rules')}"
            )
            report[name] = TagWrite(holders.len(), gained, lost, False)
        previous[name] = {"digest": digest, "definition": definition}
    for name in stale:
        gained, lost = store.sync_tag(ctx, name, [], assigned_by=f"{RULE_ACTOR}retired")
        report[name] = TagWrite(0, gained, lost, False)
        previous.pop(name, None)
    return report


def rule_catalogue(config: TagsConfig) -> dict[str, TagSpec]:
    return {r.name: TagSpec(r.name, r.taxonomy, r.description or "rule tag") for r in config.rules}
