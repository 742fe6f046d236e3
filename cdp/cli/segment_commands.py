"""CLI for tags, segments, the customer 360 and insights.

``cdp segments refresh|preview|list|overlap``, ``cdp tags list|define|add|remove|history``,
``cdp profiles show ID`` and ``cdp insights``. Refresh runs as the classifier
service identity; everything that shows people runs as the operator, who
declares a role and a purpose (``--role``/``--purpose`` or ``CDP_ROLE``/``CDP_PURPOSE``),
so masking, the consent filter and the audit trail apply to them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cdp._exceptions import InputError
from cdp.cli._runtime import console, human_context, settings, store, table
from cdp.pipeline import DEMO_SEGMENTS_DIR
from cdp.segments import insights as ins
from cdp.segments.config import TAXONOMIES, load_tags_config
from cdp.segments.service import (
    PREVIEW_FIELDS,
    build_snapshot,
    load_segment_file,
    load_segment_files,
    plugin_classifiers,
    preview,
    refresh,
    tags_config_for,
)

RoleOption = Annotated[str | None, typer.Option("--role", help="your role (or CDP_ROLE)")]
PurposeOption = Annotated[str | None, typer.Option("--purpose", help="why you are asking (or CDP_PURPOSE)")]
TagsFileOption = Annotated[
    Path | None, typer.Option("--tags-file", help="tags file (default: tags.yaml in the policies directory)")
]

segments_app = typer.Typer(help="Segments: refresh, preview, list, overlap.", no_args_is_help=True)
tags_app = typer.Typer(help="Tags: the catalogue, manual tags and their history.", no_args_is_help=True)
profiles_app = typer.Typer(help="Profiles: the customer 360 view.", no_args_is_help=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


# -- segments -----------------------------------------------------------------------------------


@segments_app.command("refresh")
def segments_refresh(
    files: Annotated[
        list[Path] | None, typer.Argument(help="segment definitions (files or directories; default: the demo's)")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="re-sync every tag and segment, changed or not")] = False,
    tags_file: TagsFileOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="list unchanged tags too")] = False,
) -> None:
    """Recompute attributes, tags and every segment (only changed ones are re-written)."""
    cfg = settings()
    definitions = load_segment_files(files or [DEMO_SEGMENTS_DIR])
    if tags_file is not None and not tags_file.is_file():
        raise InputError(f"tags file not found: {tags_file}")
    config = load_tags_config(tags_file) if tags_file is not None else tags_config_for(cfg)
    with store(cfg) as opened, console.status("computing tags and segments…"):
        report = refresh(opened, definitions, config=config, full=full)
    rows = [[k, *v] for k, v in sorted(report.tags.items()) if show_all or v[1] or v[2]]
    console.print(table("Tags (changed)" if not show_all else "Tags", ["tag", "holders", "gained", "lost"], rows))
    console.print(
        table(
            "Segments",
            ["segment", "size", "entered", "exited"],
            [[k, *v] for k, v in sorted(report.segments.items())],
        )
    )
    console.print(
        f"{report.profiles:,} profiles; {len(report.unchanged)} unchanged tag(s)/segment(s) not re-written; "
        f"{report.seconds:.1f}s"
    )


@segments_app.command("preview")
def segments_preview(
    file: Annotated[Path, typer.Argument(help="the segment definition to preview")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
    sample: Annotated[int, typer.Option(min=0, max=100, help="how many members to show")] = 10,
    fields: Annotated[str, typer.Option(help="comma-separated profile fields to show")] = ",".join(PREVIEW_FIELDS),
    save: Annotated[bool, typer.Option("--save", help="after the preview, store it and its members")] = False,
) -> None:
    """Count a segment's members and show a masked sample, before saving it."""
    cfg = settings()
    ctx = human_context(role, purpose)
    segment = load_segment_file(file)
    others = [s for s in load_segment_files([file.parent]) if s.name != segment.name] if file.parent.is_dir() else []
    wanted = tuple(f.strip() for f in fields.split(",") if f.strip())
    with store(cfg) as opened, console.status("evaluating…"):
        result = preview(opened, ctx, segment, others=others, sample=sample, fields=wanted)
        console.print(f"segment {result.name}: {result.count:,} of {result.profiles:,} profiles")
        if result.sample:
            columns = ["profile_id", *[f for f in wanted if f in result.sample[0]]]
            console.print(
                table(
                    f"Sample as {ctx.role} for {ctx.purpose}",
                    columns,
                    [[_cell(r.get(c)) for c in columns] for r in result.sample],
                )
            )
        if save:
            report = refresh(opened, [segment, *others] if others else [segment])
            size, entered, exited = report.segments[segment.name]
            console.print(f"saved {segment.name}: {size:,} members ({entered:,} entered, {exited:,} exited)")


@segments_app.command("list")
def segments_list(role: RoleOption = None, purpose: PurposeOption = None) -> None:
    """Stored segments with version, purpose and current size."""
    cfg = settings()
    with store(cfg) as opened:
        rows = opened.segment_catalogue(human_context(role, purpose))
    console.print(
        table(
            "Segments",
            ["segment", "version", "purpose", "size", "created by", "description"],
            [
                [r["name"], r["version"], r["purpose"], f"{r['size']:,}", r["created_by"], r["description"]]
                for r in rows
            ],
        )
    )


@segments_app.command("overlap")
def segments_overlap(
    names: Annotated[list[str] | None, typer.Argument(help="segments to compare (default: all)")] = None,
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Members shared by each pair of segments (counts and Jaccard index)."""
    cfg = settings()
    with store(cfg) as opened:
        memberships = opened.membership_frame(human_context(role, purpose), names)
    pairs = ins.overlap(memberships, names)
    console.print(table("Segment overlap", pairs.columns, [list(r) for r in pairs.iter_rows()]))


# -- tags ---------------------------------------------------------------------------------------


@tags_app.command("list")
def tags_list(role: RoleOption = None, purpose: PurposeOption = None) -> None:
    """Every tag with its taxonomy, kind and number of holders."""
    cfg = settings()
    ctx = human_context(role, purpose)
    with store(cfg) as opened:
        definitions = opened.tag_definitions(ctx)
        counts = opened.tag_counts(ctx)
    rows = [
        [name, d["taxonomy"], d["kind"], f"{counts.get(name, 0):,}", d["description"]]
        for name, d in sorted(definitions.items(), key=lambda kv: (kv[1]["taxonomy"], kv[0]))
    ]
    console.print(table("Tags", ["tag", "taxonomy", "kind", "holders", "description"], rows))


@tags_app.command("define")
def tags_define(
    name: Annotated[str, typer.Argument(help="the manual tag's name")],
    taxonomy: Annotated[str, typer.Option(help=f"one of {', '.join(TAXONOMIES)}")],
    description: Annotated[str, typer.Option(help="what the tag means")] = "",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Define a manual tag (operators assign it with `cdp tags add`)."""
    from cdp.segments.definition import TAG_NAME

    if taxonomy not in TAXONOMIES:
        raise InputError(f"taxonomy must be one of {list(TAXONOMIES)}")
    if not TAG_NAME.match(name):
        raise InputError("a tag name: letters, digits, '_', '-', ':', '.', '+' (at most 100)")
    cfg = settings()
    with store(cfg) as opened:
        opened.define_manual_tag(human_context(role, purpose), name, taxonomy=taxonomy, description=description)
    console.print(f"defined manual tag {name} ({taxonomy})")


@tags_app.command("add")
def tags_add(
    tag: Annotated[str, typer.Argument(help="a manual tag")],
    profile_ids: Annotated[list[str], typer.Argument(help="profile ids")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Assign a manual tag to profiles (recorded with who and when)."""
    cfg = settings()
    with store(cfg) as opened:
        added = opened.assign_tag(human_context(role, purpose), tag, profile_ids)
    console.print(f"{tag}: assigned to {added} profile(s)")


@tags_app.command("remove")
def tags_remove(
    tag: Annotated[str, typer.Argument(help="a manual tag")],
    profile_ids: Annotated[list[str], typer.Argument(help="profile ids")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Take a manual tag off profiles."""
    cfg = settings()
    with store(cfg) as opened:
        removed = opened.remove_tag(human_context(role, purpose), tag, profile_ids)
    console.print(f"{tag}: removed from {removed} profile(s)")


@tags_app.command("history")
def tags_history(
    profile: Annotated[str | None, typer.Option(help="one profile id")] = None,
    tag: Annotated[str | None, typer.Option(help="one tag")] = None,
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Tag assignments with who assigned them, when, and when they were removed."""
    if profile is None and tag is None:
        raise InputError("give --profile or --tag")
    cfg = settings()
    with store(cfg) as opened:
        rows = opened.tag_history(human_context(role, purpose), profile_id=profile, tag=tag)
    columns = ["profile_id", "tag", "assigned_by", "assigned_at", "removed_at"]
    console.print(table("Tag history", columns, [[_cell(r[c]) for c in columns] for r in rows[:500]]))


# -- profiles -----------------------------------------------------------------------------------


@profiles_app.command("show")
def profiles_show(
    profile_id: Annotated[str, typer.Argument(help="the profile id")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
    events: Annotated[int, typer.Option(min=1, max=1000, help="timeline length")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """The customer 360: golden attributes, identifiers, timeline, purchases, surveys, consents, tags, segments."""
    cfg = settings()
    with store(cfg) as opened:
        view = opened.profile_view(human_context(role, purpose), profile_id, timeline_limit=events)
    if as_json:
        console.print_json(json.dumps(view, default=_cell, ensure_ascii=False))
        return
    console.print(
        table(
            f"Profile {profile_id}",
            ["field", "value", "source"],
            [[g["field"], _cell(g["value"]), g["source"]] for g in view["golden"]],
        )
    )
    sections = (
        ("records", "Linked records (identifiers masked for your role)"),
        ("timeline", "Latest events"),
        ("purchases", "Purchases"),
        ("surveys", "Survey answers"),
        ("consents", "Consent ledger"),
        ("tags", "Tags"),
        ("segments", "Segment memberships"),
    )
    for key, title in sections:
        rows = view.get(key)
        if rows is None:
            console.print(f"[dim]{title}: not visible to your role for this purpose[/dim]")
            continue
        columns = list(dict.fromkeys(c for r in rows for c in r)) or ["(none)"]  # a key some rows lack (shredded)
        console.print(table(title, columns, [[_cell(r.get(c)) for c in columns] for r in rows]))


# -- insights -----------------------------------------------------------------------------------


def insights_command(
    role: RoleOption = None,
    purpose: PurposeOption = None,
    charts: Annotated[Path | None, typer.Option(help="write charts to this directory")] = None,
    fmt: Annotated[str, typer.Option("--format", help="chart format: png or svg")] = "png",
    min_group: Annotated[int, typer.Option(min=1, help="hide regional groups smaller than this")] = 1,
) -> None:
    """Insight tables (and charts): segment sizes over time, overlap, RFM grid, lifecycle funnel, regions."""
    cfg = settings()
    ctx = human_context(role, purpose)
    config = tags_config_for(cfg)
    with store(cfg) as opened, console.status("computing insights…"):
        snap = build_snapshot(opened, ctx, as_of=datetime.now(UTC), config=config, classifiers=plugin_classifiers(cfg))
        snap.close()
        history = opened.segment_size_history(ctx)
        memberships = opened.membership_frame(ctx)
    sizes = ins.latest_sizes(history)
    grid = ins.rfm_grid(snap.attributes)
    cells = ins.rfm_cells(snap.attributes)
    funnel = ins.lifecycle_funnel(snap.attributes)
    regions = ins.regional_distribution(snap.attributes, min_group=min_group)
    matrix = ins.overlap_matrix(memberships)
    for title, frame in (
        ("Segment sizes", sizes),
        ("Segment overlap (members in both)", matrix),
        ("RFM grid (rows: recency score, columns: frequency score)", grid),
        ("RFM cells", cells),
        ("Lifecycle funnel", funnel),
        ("Regional distribution", regions),
    ):
        console.print(table(title, frame.columns, [[_cell(v) for v in row] for row in frame.iter_rows()]))
    if charts is not None:
        from cdp.segments.charts import write_charts

        written = write_charts(
            charts, fmt=fmt, history=history, matrix=matrix, grid=grid, funnel=funnel, regions=regions
        )
        console.print("charts: " + ", ".join(str(p) for p in written))


def register(app: typer.Typer) -> None:
    """Add ``segments``, ``tags``, ``profiles`` and ``insights`` to the ``cdp`` app."""
    app.add_typer(segments_app, name="segments")
    app.add_typer(tags_app, name="tags")
    app.add_typer(profiles_app, name="profiles")
    app.command("insights")(insights_command)
