"""The ingestion runner: read → validate → normalise → store, in batches.

Each batch is written in one transaction through the access layer; the
connector's state (cursor) is saved after the batch commits, so a crash
loses nothing (the unsaved part is read again) and duplicates nothing
(records are idempotent on source + record id / message id). Every record
that fails is quarantined with its position and the reason naming the field.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cdp._exceptions import ConfigurationError, UnknownSourceError
from cdp._gc import fewer_collections
from cdp.access import CustomerStore
from cdp.access.context import AccessContext, connector_context
from cdp.connectors import _files, _worker
from cdp.connectors._worker import Batch
from cdp.connectors.base import Connector, SourceItem
from cdp.connectors.prepare import cached_normalizers
from cdp.hookspecs import PluginContext
from cdp.model import IncomingRecord
from cdp.settings import Settings

STATE_STREAM = "__state__"
GROUP_BATCHES = 8  # batches written in one transaction at most, when they queue up
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
    worker: bool = False  # read and normalised in a worker process
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


@dataclass
class _Sink:
    """Where one source's batches go, and what is counted of them."""

    source: str
    ctx: AccessContext  # one per source run: its audit rows share one request id
    stats: RunStats
    digest: str | None = None  # of the input file, recorded once all of it is stored
    location: str | None = None


class _Writer:
    """Writes batches on a background thread while the runner (or its worker process) builds the next.

    The database driver releases the GIL while it inserts and commits, so
    receiving batch N+1 overlaps with storing batch N. Jobs run in order; the
    batches of one source waiting when the writer is free are written together.
    Batches and the cursor "read up to here" commit in one transaction, after
    their quarantine entries, so a crash at any point leaves the saved cursor at
    or before what is stored. Several sources share one writer (one after
    another, never in one transaction): a source's last batch closes its run
    (the input file is recorded as ingested, its time taken).
    """

    def __init__(self, store: CustomerStore, sinks: list[_Sink], *, converted: bool, started: float) -> None:
        self.store = store
        self.converted = converted  # the batches' rows are in the driver's form (see RowMaker)
        self.sinks = sinks
        self.mark = started  # when the source being written began to count
        self.error: BaseException | None = None
        self.jobs: queue.Queue[Batch | None] = queue.Queue(maxsize=GROUP_BATCHES)
        self.thread = threading.Thread(target=self._loop, name="cdp-ingest-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        held: list[Batch | None] = []  # taken from the queue but not part of the group being made
        while True:
            job = held.pop() if held else self.jobs.get()
            if job is None:
                return
            group = [job]
            # Batches of the same source that queued up while the last one was written share the next
            # transaction (fewer commits, each rewriting fewer index pages per record); the last cursor wins.
            while not group[-1].final and len(group) < GROUP_BATCHES:
                try:
                    waiting = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if waiting is None or waiting.job != job.job:
                    held.append(waiting)
                    break
                group.append(waiting)
            if self.error is None:
                try:
                    self._write(group)
                except BaseException as exc:  # handed to the reading thread, re-raised there
                    self.error = exc

    def _write(self, group: list[Batch]) -> None:
        sink = self.sinks[group[0].job]
        ctx, stats = sink.ctx, sink.stats
        rejects = [entry for job in group for entry in job.rejects]
        if rejects:
            self.store.quarantine_many(ctx, rejects)
        state = group[-1].state
        records = [job.ready() for job in group]
        if any(records):
            outcomes = self.store.ingest_ready(
                ctx,
                records,
                cursor=(sink.source, STATE_STREAM, state),
                converted=self.converted,
            )
            for outcome in outcomes:
                stats.accepted += outcome.accepted
                stats.duplicates += outcome.duplicates
                stats.suppressed += outcome.suppressed
        else:
            self.store.set_cursor(ctx, sink.source, STATE_STREAM, state)
        if group[-1].final:
            if sink.digest is not None:
                self.store.record_file_ingested(ctx, sink.source, sink.digest, sink.location or "")
            finished = time.perf_counter()
            stats.seconds, self.mark = finished - self.mark, finished

    def submit(self, job: Batch) -> None:
        self.check()
        self.jobs.put(job)

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
        self.raw_normalizers = load_normalizers(settings)  # what a worker process gets (it memoises its own)
        self.normalizers = cached_normalizers(self.raw_normalizers)
        self.on_progress = on_progress

    def build(self, connector: Connector, item: SourceItem) -> list[IncomingRecord]:
        return _worker.build(connector, item, self.normalizers, self.settings.default_region)

    def run(self, connector: Connector, *, batch_size: int | None = None, parallel: bool | None = None) -> RunStats:
        """Ingest everything the connector has past its saved cursor.

        ``parallel``: read and normalise in a worker process (see :mod:`cdp.connectors._worker`)
        if it is safe to fork; None (the default) does so only for input files of a megabyte or more.
        """
        return self.run_many([connector], batch_size=batch_size, parallel=parallel)[0]

    def run_many(
        self, connectors: Sequence[Connector], *, batch_size: int | None = None, parallel: bool | None = None
    ) -> list[RunStats]:
        """Ingest several sources, as :meth:`run` would one after another, but pipelined.

        One worker process reads them in turn (``parallel`` as for :meth:`run`, for their input files
        together) and one writer stores their batches in order, each source in its own transactions
        with its own cursor: the next source is read while the last batches of the one before are
        stored. A source whose input file was already ingested is skipped, as :meth:`run` skips it.
        Each source's ``seconds`` runs from the end of the one before (the first's from the start),
        so they add up to the whole run. The sources must differ: two runs of one source would each
        save the cursor of that source without the other's progress.
        """
        names = [connector.source_name for connector in connectors]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigurationError(f"source {repeated[0]!r} appears twice in one run: run its inputs one at a time")
        size = batch_size or self.settings.batch_size
        started = time.perf_counter()
        # Rows in the driver's form (on SQLite); this run's own maker, so it may remember blind indexes.
        maker = self.store.row_maker(self.store.engine.dialect, remember_digests=True)
        sinks: list[_Sink] = []
        jobs: list[_worker.Job] = []
        everything: list[RunStats] = []
        for connector in connectors:
            source = connector.source_name
            ctx = connector_context(source)
            stats = RunStats(source)
            everything.append(stats)
            path_value = connector.config.get("path")
            digest = None
            if path_value and Path(str(path_value)).is_file():
                checked = time.perf_counter()
                digest = _files.file_digest(Path(str(path_value)))
                if self.store.file_already_ingested(ctx, source, digest):
                    stats.skipped_file = True
                    stats.seconds = time.perf_counter() - checked
                    continue
            state = self.store.get_cursor(ctx, source, STATE_STREAM) or {}
            sinks.append(_Sink(source, ctx, stats, digest, str(path_value) if digest is not None else None))
            jobs.append(_worker.Job(connector, self.raw_normalizers, self.settings.default_region, state, size, maker))
        worker = _worker.worker_for(jobs, forced=bool(parallel)) if parallel is not False else None
        for sink in sinks:
            sink.stats.worker = worker is not None
        if worker is None:  # in this process: memoised normalisers, rows as SQLAlchemy takes them
            maker = self.store.row_maker(remember_digests=True)
            jobs = [replace(job, normalizers=self.normalizers, maker=maker) for job in jobs]
        if jobs:
            with fewer_collections():
                self._store(worker, jobs, sinks, started)
        return everything

    def _store(
        self, worker: _worker.Worker | None, jobs: list[_worker.Job], sinks: list[_Sink], started: float
    ) -> None:
        produced = iter(worker) if worker is not None else _worker.produce(jobs)
        writer = _Writer(self.store, sinks, converted=jobs[0].maker.converted, started=started)
        try:
            try:
                for batch in produced:
                    stats = sinks[batch.job].stats
                    stats.read += batch.read
                    stats.rejected += len(batch.rejects)
                    for key, count in batch.reasons.items():
                        stats.reasons[key] = stats.reasons.get(key, 0) + count
                    if self.on_progress is not None and batch.progress:
                        self.on_progress(batch.progress)
                    writer.submit(batch)
            finally:
                writer.close()
        finally:
            if worker is not None:
                worker.close()
