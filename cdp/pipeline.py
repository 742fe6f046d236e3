"""The pipeline steps shared by ``cdp demo`` and the individual CLI commands.

ingest → resolve → refresh (tags, segments) → export, each going through the
access layer with its own service identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp.access import CustomerStore
from cdp.connectors.runner import IngestRunner, RunStats, make_connector
from cdp.identity.service import ResolveReport, resolve_identities
from cdp.segments.definition import Segment
from cdp.segments.export import ExportReport, export_csv
from cdp.segments.service import RefreshReport, refresh
from cdp.settings import Settings

DEMO_SEGMENTS_DIR = Path(__file__).resolve().parent / "demo" / "segments"


@dataclass(frozen=True)
class SourceSpec:
    connector: str
    config: dict[str, Any]


def ingest(
    store: CustomerStore, settings: Settings, spec: SourceSpec, *, on_progress: Callable[[int], None] | None = None
) -> RunStats:
    connector = make_connector(settings, spec.connector, spec.config)
    return IngestRunner(store, settings, on_progress=on_progress).run(connector)


def ingest_many(
    store: CustomerStore,
    settings: Settings,
    specs: Sequence[SourceSpec],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> list[RunStats]:
    """Ingest several sources in one pipelined run (see :meth:`IngestRunner.run_many`)."""
    connectors = [make_connector(settings, spec.connector, spec.config) for spec in specs]
    return IngestRunner(store, settings, on_progress=on_progress).run_many(connectors)


def resolve(store: CustomerStore, settings: Settings) -> ResolveReport:
    return resolve_identities(store, settings)


def refresh_segments(store: CustomerStore, segments: Sequence[Segment]) -> RefreshReport:
    return refresh(store, segments)


def export(store: CustomerStore, settings: Settings, segment: Segment) -> ExportReport:
    return export_csv(store, segment.name, purpose=segment.purpose, out_dir=settings.exports_dir)
