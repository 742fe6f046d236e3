"""The pipeline steps shared by ``cdp demo`` and the individual CLI commands.

ingest → resolve → refresh (tags, segments) → export, each going through the
access layer with its own service identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cdp._exceptions import ConfigurationError, UnknownSourceError
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


MANIFEST_SOURCE_KEYS = frozenset({"connector", "path", "config", "config_file"})


def load_manifest(path: Path) -> list[SourceSpec]:
    """The sources a manifest file lists, for one :func:`ingest_many` run.

    YAML (or JSON)::

        sources:
          - connector: website
            path: web_events.jsonl          # relative to the manifest's folder
          - connector: pos
            path: pos_transactions.csv
            config: {region_from_store_id: true}
            config_file: pos-mapping.yaml   # more config, as `cdp ingest --config` takes

    Every mistake raises :class:`ConfigurationError` naming the manifest, the entry and the key.
    """
    if not path.is_file():
        raise UnknownSourceError(f"manifest not found: {path}")
    loaded = _yaml(path, str(path))
    entries = loaded.get("sources") if isinstance(loaded, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{path}: 'sources' must be a non-empty list of sources")
    specs: list[SourceSpec] = []
    for index, entry in enumerate(entries):
        where = f"{path}: sources[{index}]"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} must be a mapping with 'connector' and 'path'")
        unknown = sorted(set(entry) - MANIFEST_SOURCE_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(MANIFEST_SOURCE_KEYS))})"
            )
        for key in ("connector", "path"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigurationError(f"{where}.{key}: required, as text")
        source_file = (path.parent / entry["path"]).resolve()
        if not source_file.is_file():
            raise UnknownSourceError(f"{where}.path: source file not found: {source_file}")
        config: dict[str, Any] = {}
        if entry.get("config_file") is not None:
            config_file = (path.parent / str(entry["config_file"])).resolve()
            if not config_file.is_file():
                raise UnknownSourceError(f"{where}.config_file: file not found: {config_file}")
            extra = _yaml(config_file, f"{where}.config_file: {config_file}") or {}
            if not isinstance(extra, dict):
                raise ConfigurationError(f"{where}.config_file: {config_file} must hold a mapping")
            config.update(extra)
        inline = entry.get("config") or {}
        if not isinstance(inline, dict):
            raise ConfigurationError(f"{where}.config must be a mapping")
        config.update(inline)
        specs.append(SourceSpec(entry["connector"].strip(), {**config, "path": str(source_file)}))
    return specs


def _yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: not a YAML file ({exc.__class__.__name__})") from None


def resolve(store: CustomerStore, settings: Settings) -> ResolveReport:
    return resolve_identities(store, settings)


def refresh_segments(store: CustomerStore, segments: Sequence[Segment]) -> RefreshReport:
    return refresh(store, segments)


def export(store: CustomerStore, settings: Settings, segment: Segment) -> ExportReport:
    return export_csv(store, segment.name, purpose=segment.purpose, out_dir=settings.exports_dir)
