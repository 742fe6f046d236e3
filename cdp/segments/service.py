"""Refreshing attributes, tags and segments from one policy-checked snapshot; previewing a segment.

One snapshot is taken through the access layer (by default the classifier
service identity, purpose ``profiling``): events without identifiers, and
profile attributes with direct identifiers denied or generalised. The
classifiers (``cdp_classifiers`` plugins) and the rule tags of the tags file
run over it; segments are evaluated over it with shared event aggregates.
Tags and memberships are written back through the access layer with history.

Refresh is incremental where it can be: a tag or segment whose members and
definition are unchanged since the last refresh (digests kept in
``<data_dir>/refresh-state.json``, no personal data) and whose stored size
still matches is not re-synced, which saves a read and a write transaction
(and an audit row) per unchanged tag or segment. ``full=True`` syncs all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cdp._exceptions import DefinitionError
from cdp.access import AccessContext, CustomerStore
from cdp.access.context import classifier_context
from cdp.hookspecs import PluginContext
from cdp.policy.model import Policy
from cdp.segments.attributes import SURVEY_EVENT, measure_events
from cdp.segments.classify.ahead import EarlyClassifiers
from cdp.segments.classify.base import (
    ClassifiedSnapshot,
    Classifier,
    TagSpec,
    collect_classifiers,
    empty_tags,
    run_classifiers,
)
from cdp.segments.config import TagsConfig, default_tags_path, load_tags_config
from cdp.segments.definition import Segment, event_specs, order_segments, parse_segment, walk_leaves
from cdp.segments.engine import CONSENTS_SCHEMA, SegmentEngine, warm_up
from cdp.segments.measures import EventMeasures
from cdp.segments.tags import TagWrite, apply_tags, digest_ids, evaluate_rule_tags, rule_catalogue
from cdp.settings import Settings

PROFILE_ATTRIBUTE_FIELDS = ("country", "state", "city", "gender", "age_band", "sources", "record_count")
PREVIEW_FIELDS = ("given_name", "email", "city", "country", "age_band")
STATE_FILE = "refresh-state.json"


@dataclass(frozen=True)
class RefreshReport:
    profiles: int
    tags: dict[str, tuple[int, int, int]]  # tag -> (holders, gained, lost)
    segments: dict[str, tuple[int, int, int]]  # segment -> (size, entered, exited)
    unchanged: tuple[str, ...] = ()  # tags and segments not re-synced (incremental refresh)
    seconds: float = 0.0


@dataclass
class Snapshot:
    """Everything computed in memory for one refresh, preview or insight run."""

    as_of: datetime
    attributes: pl.DataFrame
    classified: ClassifiedSnapshot
    rule_tags: pl.DataFrame
    catalogue: dict[str, TagSpec]
    origin: dict[str, str]
    manual: set[str]
    engine: SegmentEngine
    config: TagsConfig
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def computed_tags(self) -> pl.DataFrame:
        """Classifier and rule tags as (profile_id, tag) rows: built only here, to be written to the store."""
        return pl.concat([self.classified.tags, self.rule_tags])

    def close(self) -> None:
        self.engine.close()


@dataclass(frozen=True)
class Preview:
    name: str
    count: int
    sample: list[dict[str, Any]]
    profiles: int


def load_segment_file(path: Path) -> Segment:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"not valid YAML: {exc}", file=str(path)) from exc
    return parse_segment(document, source=str(path))


def load_segment_files(paths: Iterable[Path]) -> list[Segment]:
    """Definitions from files and directories (every ``*.yaml``, ``*.yml``, ``*.json`` in them)."""
    out: list[Segment] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            out.extend(load_segment_file(p) for p in files)
        else:
            out.append(load_segment_file(path))
    return out


def tags_config_for(settings: Settings) -> TagsConfig:
    return load_tags_config(default_tags_path(settings.policies_dir))


def plugin_classifiers(settings: Settings) -> list[Classifier]:
    from cdp.plugins import get_plugin_manager

    results = get_plugin_manager().hook.cdp_classifiers(context=PluginContext(settings=settings))
    return collect_classifiers(results)


def consent_table(
    policy: Policy, purposes: Collection[str], attributes: pl.DataFrame, ledger: pl.DataFrame
) -> pl.DataFrame:
    """profile_id, purpose, status, allowed for every profile and every policy purpose named."""
    if not purposes:  # no jurisdiction to look up for a million profiles
        return pl.DataFrame(schema=CONSENTS_SCHEMA)
    country_to_jurisdiction = {c: name for name, codes in policy.jurisdictions.items() for c in codes}
    country = (
        pl.col("country").cast(pl.String).str.to_uppercase()
        if "country" in attributes.columns
        else pl.lit(None, dtype=pl.String)
    )
    people = attributes.select(
        "profile_id",
        country.replace_strict(country_to_jurisdiction, default=None, return_dtype=pl.String).alias("_jurisdiction"),
    )
    parts: list[pl.DataFrame] = []
    for purpose in sorted(set(purposes)):
        definition = policy.purposes.get(purpose)
        consent = definition.consent if definition is not None else None
        if consent is None:
            parts.append(
                people.select(
                    "profile_id",
                    pl.lit(purpose).alias("purpose"),
                    pl.lit(None, pl.String).alias("status"),
                    pl.lit(True).alias("allowed"),
                )
            )
            continue
        opt_in = sorted(definition.opt_in_required) if definition is not None else []
        rows = ledger.filter(pl.col("purpose") == consent).select("profile_id", "status")
        joined = people.join(rows, on="profile_id", how="left")
        allowed = (pl.col("status") == "granted") | (
            pl.col("status").is_null() & ~pl.col("_jurisdiction").fill_null("").is_in(opt_in)
        )
        parts.append(joined.select("profile_id", pl.lit(purpose).alias("purpose"), "status", allowed.alias("allowed")))
    return pl.concat(parts) if parts else pl.DataFrame(schema=CONSENTS_SCHEMA)


def consent_purposes(wheres: Iterable[Mapping[str, Any]]) -> set[str]:
    return {
        str(leaf["consent"]) for where in wheres for leaf in walk_leaves(where) if isinstance(leaf.get("consent"), str)
    }


def build_snapshot(
    store: CustomerStore,
    ctx: AccessContext,
    *,
    as_of: datetime,
    config: TagsConfig,
    classifiers: Sequence[Classifier],
    segments: Sequence[Segment] = (),
    profile_fields: Sequence[str] = PROFILE_ATTRIBUTE_FIELDS,
) -> Snapshot:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    profiles = store.profile_frame(ctx, profile_fields, today=as_of.date())
    keys = profiles["profile_id"]
    specs = event_specs([*(s.where for s in segments), *(r.where for r in config.rules)])
    # The store hands the events to the attributes' compiled pass block by block as it decodes
    # them (``scan_events``): no frame of every event is made. Segments read event properties
    # only for survey answers: the others are not read at all. Each event comes with its
    # profile's position in the profile frame, which is what the attributes want. The read keeps
    # both cores busy (a reading thread, a decoding thread, the pass on this one), so nothing
    # else starts until the last block is decoded; the pass then still has a backlog to take, and
    # on the decoding's core the classifiers that read only profile columns start (Polars, which
    # lets go of the GIL), followed on the same helper by DuckDB's one-time set-up, which the
    # segment engine would otherwise wait for (docs/benchmarks.md, Segments, fourteenth session).
    with (
        EarlyClassifiers(classifiers, profiles, config) as early,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-duckdb-warm-up") as warming,
    ):
        warmed: list[Future[None]] = []

        def after_early() -> None:  # one helper core: DuckDB's set-up once the early classifiers are done
            early.results()
            warm_up()

        def decoded() -> None:  # the decoding's core is free while the pass takes its backlog
            early.start()
            warmed.append(warming.submit(after_early))

        def scanned() -> None:
            timings["scan"] = time.perf_counter() - started  # the events read and the attributes' pass
            if not warmed:  # a scan that did not say when its decoding ended
                decoded()

        def scan(sink: EventMeasures) -> int:
            # The helper core idles while the first blocks are read and decoded: it faults in the
            # measure arrays meanwhile (``finish``'s rows too), which the pass would otherwise do in
            # its first batches.
            warming.submit(sink.prefault)
            return store.scan_events(ctx, sink, positions_of=keys, properties_of={SURVEY_EVENT}, decoded=decoded)

        computed = measure_events(
            scan,
            keys,
            as_of=as_of,
            config=config,
            event_specs=specs,
            scanned=scanned,
        )
        attributes = (
            pl.concat([profiles, computed.drop("profile_id")], how="horizontal") if computed.width > 1 else profiles
        )
        timings["attributes"] = time.perf_counter() - started - timings["scan"]
        started = time.perf_counter()
        classified = run_classifiers(attributes, classifiers, config, early.pending())
        for warming_up in warmed:
            warming_up.result()
    definitions = store.tag_definitions(ctx)
    manual = {name for name, d in definitions.items() if d["kind"] == "manual"}
    held = store.profile_tags(ctx)
    manual_tags = pl.DataFrame(
        [(p, tag) for p, names in held.items() for tag in names if tag in manual],
        schema={"profile_id": pl.String, "tag": pl.String},
        orient="row",
    )
    purposes = consent_purposes([*(s.where for s in segments), *(r.where for r in config.rules)])
    ledger_purposes = {
        d.consent for p in purposes if (d := store.policy.policy.purposes.get(p)) is not None and d.consent
    }
    ledger = (
        store.consent_frame(ctx, ledger_purposes)
        if ledger_purposes
        else pl.DataFrame(schema={"profile_id": pl.String, "purpose": pl.String, "status": pl.String})
    )
    consents = consent_table(store.policy.policy, purposes, classified.attributes, ledger)
    engine = SegmentEngine(
        classified.attributes,
        # Read again only if a segment evaluated later asks for an event measure not computed above.
        lambda: store.events_frame(ctx, properties_of=(), positions_of=keys),
        pl.concat([classified.tag_rows, manual_tags]),
        as_of=as_of,
        consents=consents,
        purposes=store.policy.policy.purposes,
        config=config,
        tag_frame=classified.tag_frame,
        event_profiles=keys,
    )
    rules = evaluate_rule_tags(engine, config.rules, config) if config.rules else empty_tags()
    engine.add_tags(rules)
    timings["classify"] = time.perf_counter() - started
    return Snapshot(
        as_of,
        classified.attributes,
        classified,
        rules,
        {**classified.catalogue, **rule_catalogue(config)},
        {**classified.origin, **{r.name: "rules" for r in config.rules}},
        manual,
        engine,
        config,
        timings,
    )


def bind_purpose(segment: Segment, policy: Policy) -> Segment:
    """The segment with its purpose's consent added as a condition (when the purpose needs one)."""
    purpose = policy.purposes.get(segment.purpose)
    if purpose is None or purpose.consent is None:
        return segment
    return replace(segment, where={"all": [dict(segment.where), {"consent": segment.purpose}]})


def _load_state(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_state(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, sort_keys=True, indent=1), encoding="utf-8")
    temporary.replace(path)


def _definition_digest(segment: Segment) -> str:
    return hashlib.sha256(json.dumps(segment.definition, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def refresh(
    store: CustomerStore,
    segments: Sequence[Segment],
    *,
    as_of: datetime | None = None,
    config: TagsConfig | None = None,
    classifiers: Sequence[Classifier] | None = None,
    full: bool = False,
    state_path: Path | None = None,
) -> RefreshReport:
    """Recompute tags and the given segments and store them with history."""
    started = time.perf_counter()
    moment = as_of or datetime.now(UTC)
    ctx = classifier_context("profiling")
    options = config or tags_config_for(store.settings)
    ordered = order_segments(list(segments))  # fail on cycles before any work
    chain = plugin_classifiers(store.settings) if classifiers is None else list(classifiers)
    path = state_path or store.settings.data_dir / STATE_FILE
    state = _load_state(path)
    # A segment is computed for its declared purpose: people whose consent does not allow that
    # purpose are not members, so a withdrawal takes effect on the very next refresh. (The bound
    # copies only make the snapshot load those purposes' consent; members come from the originals.)
    bound = [bind_purpose(s, store.policy.policy) for s in ordered]
    snap = build_snapshot(store, ctx, as_of=moment, config=options, classifiers=chain, segments=bound)
    unchanged: list[str] = []
    try:
        writes: dict[str, TagWrite] = apply_tags(
            store, ctx, snap.computed_tags, snap.catalogue, snap.origin, state=state, full=full, manual=snap.manual
        )
        unchanged.extend(f"tag:{name}" for name, w in writes.items() if w.skipped)
        members = snap.engine.evaluate(ordered)
        for segment in ordered:
            if bind_purpose(segment, store.policy.policy) is not segment:
                allowed = snap.engine.allowed(segment.purpose)
                members[segment.name] = members[segment.name].filter(members[segment.name].is_in(list(allowed)))
        sizes = store.segment_sizes(ctx)
        previous: dict[str, Any] = state.setdefault("segments", {})
        segment_report: dict[str, tuple[int, int, int]] = {}
        for segment in ordered:
            ids = members[segment.name]
            entry = {"digest": digest_ids(ids), "definition": _definition_digest(segment)}
            if not full and previous.get(segment.name) == entry and sizes.get(segment.name) == ids.len():
                segment_report[segment.name] = (ids.len(), 0, 0)
                unchanged.append(f"segment:{segment.name}")
                continue
            store.save_segment(ctx, segment.name, segment.definition)
            segment_report[segment.name] = store.sync_membership(ctx, segment.name, ids.to_list())
            previous[segment.name] = entry
    finally:
        snap.close()
        _save_state(path, state)
    tag_report = {name: (w.holders, w.gained, w.lost) for name, w in writes.items()}
    return RefreshReport(
        snap.attributes.height, tag_report, segment_report, tuple(unchanged), time.perf_counter() - started
    )


def preview(
    store: CustomerStore,
    ctx: AccessContext,
    segment: Segment,
    *,
    others: Sequence[Segment] = (),
    sample: int = 10,
    fields: Sequence[str] = PREVIEW_FIELDS,
    as_of: datetime | None = None,
    config: TagsConfig | None = None,
    classifiers: Sequence[Classifier] | None = None,
) -> Preview:
    """Count the segment's members now and show a sample as ``ctx`` may see it (masked, consent-filtered).

    Nothing is written. ``others`` are definitions the segment may reference.
    """
    moment = as_of or datetime.now(UTC)
    options = config or tags_config_for(store.settings)
    chain = plugin_classifiers(store.settings) if classifiers is None else list(classifiers)
    needed = _with_references(segment, others)
    snap = build_snapshot(
        store, classifier_context("profiling"), as_of=moment, config=options, classifiers=chain, segments=needed
    )
    try:
        members = snap.engine.evaluate(needed)[segment.name]
    finally:
        snap.close()
    picked = members.sample(min(sample, members.len()), seed=0).sort().to_list() if sample > 0 else []
    rows = store.read_profiles(ctx, fields, profile_ids=picked) if picked else []
    return Preview(segment.name, members.len(), rows, snap.attributes.height)


def _with_references(segment: Segment, others: Sequence[Segment]) -> list[Segment]:
    by_name = {s.name: s for s in others if s.name != segment.name}
    needed: dict[str, Segment] = {segment.name: segment}
    queue = [segment]
    while queue:
        current = queue.pop()
        for leaf in walk_leaves(current.where):
            target = leaf.get("segment")
            if isinstance(target, str) and target in by_name and target not in needed:
                needed[target] = by_name[target]
                queue.append(by_name[target])
    return list(needed.values())
