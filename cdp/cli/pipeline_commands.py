"""CLI commands that move data: demo, ingest, resolve, segments, export."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cdp._exceptions import ConfigurationError, UnknownSourceError
from cdp.access import AccessContext
from cdp.cli._runtime import console, settings, store, table
from cdp.connectors.runner import RunStats
from cdp.identity.realtime import RealtimeReport, match_new_records
from cdp.pipeline import (
    DEMO_SEGMENTS_DIR,
    SourceSpec,
    export,
    ingest,
    ingest_many,
    load_manifest,
    refresh_segments,
    resolve,
)
from cdp.segments.service import load_segment_file

DEMO_TAG_FAMILIES = ("lifecycle", "value", "rfm")  # the summary shows these; `cdp tags list` shows all
DEMO_SOURCES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("website", "web", {}),
    ("pos", "pos", {"region_from_store_id": True}),  # demo store ids start with the store's country
    ("survey", "survey", {}),
)


@contextmanager
def byte_progress(label: str, *paths: Path) -> Iterator[Any]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        sizes = [path.stat().st_size if path.is_file() else None for path in paths]
        task = progress.add_task(label, total=None if None in sizes else sum(size or 0 for size in sizes))
        yield lambda n: progress.advance(task, n)


def _stats_table(stats: list[RunStats]) -> None:
    console.print(
        table(
            "Ingestion",
            ["source", "read", "accepted", "rejected", "duplicates", "seconds", "records/s"],
            [
                [s.source, s.read, s.accepted, s.rejected, s.duplicates, f"{s.seconds:.1f}", f"{s.per_second:,.0f}"]
                for s in stats
            ],
        )
    )


def ingest_command(
    connector: Annotated[
        str, typer.Argument(help="connector name: website, pos, survey, generic or an installed plugin")
    ],
    path: Annotated[Path, typer.Argument(help="the file to read")],
    config: Annotated[Path | None, typer.Option(help="YAML file with more connector config (column mapping…)")] = None,
    match: Annotated[
        bool, typer.Option(help="match new records against existing profiles (once `cdp resolve` has trained a model)")
    ] = True,
) -> None:
    """Ingest a file through a connector (idempotent: re-running adds nothing).

    New records then join their profiles at once (no batch run) when a model exists.
    """
    cfg = settings()
    extra: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise UnknownSourceError(f"config file not found: {config}")
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"{config}: connector config must be a mapping")
        extra = loaded
    if not path.is_file():
        raise UnknownSourceError(f"source file not found: {path}")
    matched = None
    with store(cfg, migrate=True) as opened:
        with byte_progress(f"ingest {path.name}", path) as advance:
            stats = ingest(opened, cfg, SourceSpec(connector, {**extra, "path": str(path)}), on_progress=advance)
        if match and stats.accepted:
            with console.status("matching new records against existing profiles…"):
                matched = match_new_records(opened, cfg)
    if stats.skipped_file:
        console.print(f"{path} was already ingested: nothing to do")
    _report_ingest([stats], matched)


def ingest_files_command(
    manifest: Annotated[Path, typer.Argument(help="YAML file listing the sources: connector, path, config")],
    match: Annotated[
        bool, typer.Option(help="match new records against existing profiles (once `cdp resolve` has trained a model)")
    ] = True,
) -> None:
    """Ingest several files in one run: the next file is read while the last one's records are stored.

    The manifest lists ``sources``, each with ``connector`` and ``path`` (relative to the manifest),
    and optionally ``config`` (a mapping) or ``config_file`` (as ``cdp ingest --config``). Each source
    is stored as ``cdp ingest`` would store it, in its own transactions, idempotently; a file already
    ingested is skipped. The sources must differ (two files of one connector: two runs).
    """
    cfg = settings()
    specs = load_manifest(manifest)
    paths = [Path(spec.config["path"]) for spec in specs]
    matched = None
    with store(cfg, migrate=True) as opened:
        with byte_progress(f"ingest {len(paths)} files", *paths) as advance:
            runs = ingest_many(opened, cfg, specs, on_progress=advance)
        if match and any(s.accepted for s in runs):
            with console.status("matching new records against existing profiles…"):
                matched = match_new_records(opened, cfg)
    for stats, path in zip(runs, paths, strict=True):
        if stats.skipped_file:
            console.print(f"{path} was already ingested: skipped")
    _report_ingest(runs, matched)


def _report_ingest(runs: list[RunStats], matched: RealtimeReport | None) -> None:
    _stats_table(runs)
    rejected = sum(s.rejected for s in runs)
    if rejected:
        console.print(f"{rejected} record(s) quarantined: see `cdp quarantine list`")
    if matched is not None and matched.skipped is None:
        console.print(
            f"identity: {matched.joined_existing:,} record(s) joined existing profiles, "
            f"{matched.new_profiles:,} new profile(s), {matched.followed_identifiers:,} anonymous record(s) "
            "followed an account or device id"
        )


def resolve_command() -> None:
    """Resolve identities: cluster records into profiles with stable ids."""
    cfg = settings()
    with store(cfg) as opened, console.status("resolving identities…"):
        report = resolve(opened, cfg)
    s = report.stats
    console.print(
        table(
            "Identity resolution",
            ["records", "profiles", "new", "kept", "retired", "relinked", "anonymous records", "refused joins"],
            [
                [
                    s.records,
                    s.profiles,
                    s.created,
                    s.kept,
                    s.retired,
                    s.relinked,
                    report.anonymous_records,
                    report.refused,
                ]
            ],
        )
    )


def export_command(
    segment_file: Annotated[Path, typer.Argument(help="the segment definition to export")],
) -> None:
    """Export a segment's members to CSV (only those whose consent allows the segment's purpose)."""
    cfg = settings()
    definition = load_segment_file(segment_file)
    with store(cfg) as opened:
        report = export(opened, cfg, definition)
    console.print(
        table(
            "Export",
            ["segment", "members", "written", "excluded by consent", "file"],
            [[definition.name, report.members, report.written, report.excluded, report.path]],
        )
    )


def demo_command(
    customers: Annotated[int, typer.Option(min=10, max=2_000_000, help="how many customers to generate")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 42,
) -> None:
    """Generate sample data and run the whole pipeline: ingest, resolve, tag, segment, export."""
    from datetime import UTC, datetime

    from cdp.demo import generate

    cfg = settings()
    started = time.perf_counter()
    out_dir = cfg.data_dir / "demo" / f"{customers}-{seed}"
    with console.status(f"generating {customers:,} customers…"):
        files = generate(out_dir, customers=customers, seed=seed, as_of=datetime.now(UTC).date())
    with store(cfg, migrate=True) as opened:
        paths = [Path(getattr(files, attribute)) for _, attribute, _ in DEMO_SOURCES]
        specs = [
            SourceSpec(connector, {**extra, "path": str(path)})
            for (connector, _, extra), path in zip(DEMO_SOURCES, paths, strict=True)
        ]
        # One run for the three files: the next file is read while the last batches of one are stored.
        with byte_progress(f"ingest {', '.join(path.name for path in paths)}", *paths) as advance:
            stats = ingest_many(opened, cfg, specs, on_progress=advance)
        with console.status("resolving identities…"):
            resolved = resolve(opened, cfg)
        definitions = [load_segment_file(p) for p in sorted(DEMO_SEGMENTS_DIR.glob("*.yaml"))]
        with console.status("computing tags and segments…"):
            refreshed = refresh_segments(opened, definitions)
        exported = export(opened, cfg, definitions[0])
        counts = opened.counts(AccessContext("cli:demo", "data_engineer", "operations"))
    _stats_table(stats)
    s = resolved.stats
    console.print(
        table(
            "Summary",
            ["what", "value"],
            [
                ["customers generated", f"{customers:,}"],
                *[[f"records from {src}", f"{n:,}"] for src, n in sorted(counts.items()) if src.startswith("records:")],
                ["profiles", f"{s.profiles:,}"],
                ["records merged into another record's profile", f"{sum(resolved.joins.values()):,}"],
                ["joins refused by name/birth-date guard", f"{resolved.refused:,}"],
                ["anonymous web records (no profile yet)", f"{resolved.anonymous_records:,}"],
                *[
                    [f"tag {k}", f"{v[0]:,}"]
                    for k, v in sorted(refreshed.tags.items())
                    if k.split(":")[0] in DEMO_TAG_FAMILIES
                ],
                *[[f"segment {k}", f"{v[0]:,}"] for k, v in refreshed.segments.items()],
                ["exported (consent allowed)", f"{exported.written:,} of {exported.members:,}"],
                ["export file", str(exported.path)],
                ["quarantined records", f"{counts.get('quarantine', 0):,}"],
                ["audit records written", f"{counts.get('audit', 0):,}"],
                ["seconds", f"{time.perf_counter() - started:.1f}"],
            ],
        )
    )
