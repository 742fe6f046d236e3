"""The ingestion runner: read → validate → normalise → store, in batches.

Each batch is written in one transaction through the access layer; the
connector's state (cursor) is saved after the batch commits, so a crash
loses nothing (the unsaved part is read again) and duplicates nothing
(records are idempotent on source + record id / message id). Every record
that fails is quarantined with its position and the reason naming the field.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdp._exceptions import ConfigurationError, RecordRejected, UnknownSourceError
from cdp.access import CustomerStore
from cdp.access.context import connector_context
from cdp.connectors import _files
from cdp.connectors.base import Connector, ReadResult, SourceItem
from cdp.connectors.prepare import cached_normalizers, normalise_record
from cdp.hookspecs import PluginContext
from cdp.model import IncomingRecord
from cdp.settings import Settings

STATE_STREAM = "__state__"
ProgressCallback = Callable[[int], None]


@dataclass
class RunStats:
    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    suppressed: int = 0
    seconds: float = 0.0
    skipped_file: bool = False
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def available_connectors(settings: Settings) -> dict[str, type[Connector]]:
    from cdp.plugins import get_plugin_manager

    found: dict[str, type[Connector]] = {}
    for group in get_plugin_manager().hook.cdp_connectors(context=PluginContext(settings=settings)):
        for cls in group:
            found[cls.name] = cls
    return found


def make_connector(settings: Settings, name: str, config: Mapping[str, Any]) -> Connector:
    connectors = available_connectors(settings)
    if name not in connectors:
        raise UnknownSourceError(f"unknown connector {name!r} (installed: {', '.join(sorted(connectors))})")
    return connectors[name](config)


def load_normalizers(settings: Settings) -> dict[str, Callable[..., Any]]:
    from cdp.plugins import get_plugin_manager

    merged: dict[str, Callable[..., Any]] = {}
    # pluggy returns results last-registered first; apply in registration order so later plugins override.
    for group in reversed(get_plugin_manager().hook.cdp_normalizers(context=PluginContext(settings=settings))):
        merged.update(group)
    missing = {"email", "phone", "name", "date_of_birth", "postcode", "country"} - merged.keys()
    if missing:
        raise ConfigurationError(f"no normaliser registered for {', '.join(sorted(missing))}")
    return merged


def quarantine_text(item: SourceItem) -> str:
    """What is kept of a rejected item: its parsed form as JSON (replayable), else the raw text."""
    if item.data is not None:
        return json.dumps(item.data, ensure_ascii=False)
    return item.raw


class _Writer:
    """Writes batches on a background thread while the runner reads and builds the next one.

    The database driver releases the GIL while it inserts and commits, so
    reading/normalising batch N+1 overlaps with storing batch N. Jobs run in
    order, one at a time; a batch and the cursor "read up to here" commit in
    one transaction, after that batch's quarantine entries, so a crash at any
    point leaves the saved cursor at or before what is stored.
    """

    def __init__(self, store: CustomerStore, source: str, stats: RunStats) -> None:
        self.store = store
        self.source = source
        self.ctx = connector_context(source)
        self.stats = stats
        self.error: BaseException | None = None
        self.jobs: queue.Queue[tuple[list[IncomingRecord], list[dict[str, Any]], dict[str, Any]] | None] = queue.Queue(
            maxsize=2
        )
        self.thread = threading.Thread(target=self._loop, name=f"cdp-ingest-{source}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    self._write(*job)
                except BaseException as exc:  # handed to the reading thread, re-raised there
                    self.error = exc

    def _write(self, batch: list[IncomingRecord], rejects: list[dict[str, Any]], state: dict[str, Any]) -> None:
        if rejects:
            self.store.quarantine_many(self.ctx, rejects)
        if batch:
            outcome = self.store.ingest(self.ctx, batch, cursor=(self.source, STATE_STREAM, state))
            self.stats.accepted += outcome.accepted
            self.stats.duplicates += outcome.duplicates
            self.stats.suppressed += outcome.suppressed
        else:
            self.store.set_cursor(self.ctx, self.source, STATE_STREAM, state)

    def submit(self, batch: list[IncomingRecord], rejects: list[dict[str, Any]], state: dict[str, Any]) -> None:
        self.check()
        self.jobs.put((batch, rejects, state))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self.check()


class IngestRunner:
    def __init__(
        self, store: CustomerStore, settings: Settings, *, on_progress: ProgressCallback | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.normalizers = cached_normalizers(load_normalizers(settings))
        self.on_progress = on_progress

    def build(self, connector: Connector, item: SourceItem) -> list[IncomingRecord]:
        if item.error is not None:
            # A connector that could not parse an item may not know a field: "(record)" names the whole item.
            raise RecordRejected(item.error, record=item.position, field=item.error_field or "(record)")
        return [normalise_record(r, self.normalizers, self.settings.default_region) for r in connector.to_record(item)]

    def run(self, connector: Connector, *, batch_size: int | None = None) -> RunStats:
        size = batch_size or self.settings.batch_size
        source = connector.source_name
        ctx = connector_context(source)
        stats = RunStats(source)
        started = time.perf_counter()
        path_value = connector.config.get("path")
        digest = None
        if path_value and Path(str(path_value)).is_file():
            digest = _files.file_digest(Path(str(path_value)))
            if self.store.file_already_ingested(ctx, source, digest):
                stats.skipped_file = True
                stats.seconds = time.perf_counter() - started
                return stats
        state = self.store.get_cursor(ctx, source, STATE_STREAM) or {}
        result = ReadResult(state=copy.deepcopy(state))
        batch: list[IncomingRecord] = []
        rejects: list[dict[str, Any]] = []
        writer = _Writer(self.store, source, stats)
        try:
            for item in connector.read(state, result):
                stats.read += 1
                try:
                    batch.extend(self.build(connector, item))
                except RecordRejected as exc:
                    stats.rejected += 1
                    key = exc.field or "record"
                    stats.reasons[key] = stats.reasons.get(key, 0) + 1
                    rejects.append(
                        {
                            "source": source,
                            "stream": item.stream,
                            "position": item.position,
                            "field": exc.field or None,
                            "reason": exc.message,
                            "raw": quarantine_text(item),
                        }
                    )
                if self.on_progress is not None:
                    self.on_progress(len(item.raw) + 1)
                if len(batch) >= size or len(rejects) >= size:
                    writer.submit(batch, rejects, copy.deepcopy(result.state))
                    batch, rejects = [], []
            writer.submit(batch, rejects, copy.deepcopy(result.state))
        finally:
            writer.close()
        if digest is not None:
            self.store.record_file_ingested(ctx, source, digest, str(path_value))
        stats.seconds = time.perf_counter() - started
        return stats
