"""Replaying quarantined records after a fix (a corrected mapping, a new connector version).

Each open entry of a source is decrypted in memory, parsed again by the
connector (possibly with a new config) and, if it now passes, stored through
the same idempotent path as a normal run; entries that still fail stay open
with the new reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cdp._exceptions import ConfigurationError, RecordRejected
from cdp.access import CustomerStore
from cdp.access.context import AccessContext, connector_context
from cdp.connectors.base import SourceItem
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import Settings


@dataclass(frozen=True)
class ReplayResult:
    tried: int
    accepted: int
    rejected: int


def replay(
    store: CustomerStore, settings: Settings, source: str, connector_name: str, config_file: Path | None
) -> ReplayResult:
    config: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"{config_file}: connector config must be a mapping")
        config = loaded
    config.setdefault("path", "")
    if connector_name != "website":
        config.setdefault("source", source)
    connector = make_connector(settings, connector_name, config)
    runner = IngestRunner(store, settings)
    ops = AccessContext(f"connector:{source}", "data_engineer", "operations")
    ctx = connector_context(source)
    entries = store.quarantine_entries(ops, source=source, status="open", limit=1_000_000)
    accepted = rejected = 0
    replayed: list[str] = []
    for entry in entries:
        row, raw = store.quarantine_payload(ops, entry["id"])
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        item = SourceItem(
            row["stream"],
            row["position"],
            raw,
            data=data if isinstance(data, dict) else None,
            error=None if isinstance(data, dict) else "still not parseable",
        )
        try:
            records = runner.build(connector, item)
        except RecordRejected as exc:
            rejected += 1
            store.quarantine(
                ctx,
                source=source,
                stream=row["stream"],
                position=row["position"],
                field=exc.field or None,
                reason=exc.message,
                raw=raw,
            )
            continue
        store.ingest(ctx, records)
        replayed.append(entry["id"])
        accepted += 1
    if replayed:
        store.mark_replayed(ops, replayed)
    return ReplayResult(len(entries), accepted, rejected)
