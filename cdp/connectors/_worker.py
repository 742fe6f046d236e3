"""Reading, parsing and normalising in a worker process, so the storing process only stores.

Why this module exists: parsing a source (JSON, CSV, the Segment spec),
normalising identifiers and encoding each payload as JSON is about half of
the CPU time of an ingest, and all of it holds the GIL; the access layer's
encryption and SQLite inserts are the other half. With only a thread, the
two halves take turns on one core. Here a forked child process reads the
connector, builds and normalises the records, and does the per-record work
that needs no database (:class:`cdp.access._ingest.RowMaker`: the payload's
JSON without special categories, the blind indexes, the rows of events and
consents, record ids), then sends whole batches of plain tuples (with the
cursor state reached and the rejects) to the parent through a pipe; the
parent looks up and creates keys, encrypts, and keeps every database write,
in order, as before. Tuples, not record objects: unpickling the objects
was about a fifth of the parent's time. The tuples travel pickled as one
bytes object per batch (:meth:`Batch.pack`: marshal, or pickle for what
marshal cannot hold) through a pipe widened to 1 MiB (:func:`_widen`); the
parent's writer thread reads them back, so the thread that receives holds
the GIL only briefly.

Privacy: plaintext personal data crosses only the pipe between the two
processes (never a file), and the child writes nothing anywhere.
Crash safety is unchanged: the parent saves each batch's cursor in that
batch's own transaction, so if either process dies the next run resumes at
or before what was stored. A child whose parent was killed fails on its
next send (the pipe is closed) and exits.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cdp._exceptions import RecordRejected
from cdp._gc import fewer_collections_from_now
from cdp.access._parallel import can_fork
from cdp.access._rows import Ready, RowMaker, pack_rows, unpack_rows
from cdp.connectors.base import Connector, ReadResult, SourceItem
from cdp.connectors.prepare import Normalizers, cached_normalizers, normalise_record
from cdp.model import IncomingRecord

PARALLEL_MIN_BYTES = 1 << 20  # below this, starting a process costs more than it saves
PIPE_BYTES = 1 << 22  # pipe buffer asked for (the system caps it, see _widen)


@dataclass
class Batch:
    """One batch as the child sends it: records made ready for storing, rejects, cursor, counts.

    From a worker process the records come ``packed`` (pickled bytes, ``records`` empty): the
    thread that receives them only copies bytes, and the thread that stores them unpickles them
    (:meth:`ready`). Unpickling in the receiving thread made it hold the GIL for ~25 ms per batch
    while the storing thread, which drops the GIL around every SQLite step, waited to get it back.
    """

    records: list[Ready]  # see cdp.access._ingest.Ready
    rejects: list[dict[str, Any]]
    state: dict[str, Any]
    read: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    progress: int = 0  # bytes read, for progress bars
    packed: bytes | None = None  # the records, serialised (see above)
    marshalled: bool = False  # packed with marshal (else pickle)
    job: int = 0  # which job of the list a worker was handed this batch belongs to
    final: bool = False  # the job's last batch: its input is read to the end

    def pack(self) -> Batch:
        """This batch with its records serialised into :attr:`packed` (:func:`pack_rows`: marshal
        where it can hold them, about 2.5 times faster to read than pickle for 28,700 demo records,
        0.09 vs 0.21 CPU s, and it is the storing process that reads; else pickle). Both ends are
        the same interpreter (a forked child), as marshal's format requires."""
        packed, marshalled = pack_rows(self.records)
        return replace(self, records=[], packed=packed, marshalled=marshalled)

    def ready(self) -> list[Ready]:
        """The records, read back if they came packed."""
        if self.packed is None:
            return self.records
        return unpack_rows(self.packed, self.marshalled)


@dataclass(frozen=True)
class Job:
    """What the child needs: the connector, the normalisers and how to cut and encode batches."""

    connector: Connector
    normalizers: Normalizers
    default_region: str
    state: dict[str, Any]
    batch_size: int
    maker: RowMaker  # the store's (policy, blind indexer, evidence hashing)


def build(connector: Connector, item: SourceItem, normalizers: Normalizers, region: str) -> list[IncomingRecord]:
    """The normalised records of one item; RecordRejected names the field of a bad one."""
    if item.error is not None:
        # A connector that could not parse an item may not know a field: "(record)" names the whole item.
        raise RecordRejected(item.error, record=item.position, field=item.error_field or "(record)")
    return [normalise_record(r, normalizers, region) for r in connector.to_record(item)]


def reject_entry(source: str, item: SourceItem, exc: RecordRejected) -> dict[str, Any]:
    """The quarantine entry of a rejected item: its parsed form as JSON (replayable), else the raw text."""
    raw = json.dumps(item.data, ensure_ascii=False) if item.data is not None else item.raw
    return {
        "source": source,
        "stream": item.stream,
        "position": item.position,
        "field": exc.field or None,
        "reason": exc.message,
        "raw": raw,
    }


def batches(job: Job, index: int = 0) -> Iterator[Batch]:
    """Read the connector from ``job.state`` and yield full batches, then the last (possibly empty) one,
    each marked as job ``index``'s and the last one as ``final``.

    Records are made ready (``RowMaker.make``) a whole batch at a time: one call makes the batch's
    record ids from one read of the OS CSPRNG and keeps its per-call set-up out of the per-record cost.
    """
    connector = job.connector
    source = connector.source_name
    result = ReadResult(state=copy.deepcopy(job.state))
    current = Batch([], [], {}, job=index)
    built: list[IncomingRecord] = []
    make = job.maker.make
    for item in connector.read(job.state, result):
        current.read += 1
        current.progress += len(item.raw) + 1
        try:
            built += build(connector, item, job.normalizers, job.default_region)
        except RecordRejected as exc:
            key = exc.field or "record"
            current.reasons[key] = current.reasons.get(key, 0) + 1
            current.rejects.append(reject_entry(source, item, exc))
        if len(built) >= job.batch_size or len(current.rejects) >= job.batch_size:
            current.records, built = make(built), []
            current.state = copy.deepcopy(result.state)
            yield current
            current = Batch([], [], {}, job=index)
    current.records = make(built)
    current.state = copy.deepcopy(result.state)
    current.final = True
    yield current


def produce(jobs: Sequence[Job]) -> Iterator[Batch]:
    """The batches of every job in turn (in this process)."""
    for index, job in enumerate(jobs):
        yield from batches(job, index)


def _child(jobs: Sequence[Job], pipe: Connection, parent_end: Connection) -> None:
    """The worker process: send each job's batches, job after job, then None; an error is sent instead
    of raised."""
    # A forked child inherits the parent's receiving end: closed here, so that once the parent is
    # gone no reader is left and the next send fails (EPIPE) instead of blocking forever.
    parent_end.close()
    fewer_collections_from_now()  # what was inherited from the parent is not this process's garbage
    try:
        # Jobs handed the same normalisers share one memo: a person's identifiers recur across sources.
        memoised: dict[int, Normalizers] = {}
        for job in jobs:
            if id(job.normalizers) not in memoised:
                memoised[id(job.normalizers)] = cached_normalizers(job.normalizers)
        for batch in produce([replace(job, normalizers=memoised[id(job.normalizers)]) for job in jobs]):
            pipe.send(batch.pack())
        pipe.send(None)
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the parent is gone: nobody to tell
        return
    except BaseException as exc:  # handed to the parent and re-raised there
        try:
            pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes; some exceptions cannot be rebuilt
            pipe.send(exc)
        except Exception:
            pipe.send(RuntimeError(f"ingest worker failed: {exc.__class__.__name__}: {exc}"))
    finally:
        pipe.close()


class Worker:
    """A child process producing batches for :class:`~cdp.connectors.runner.IngestRunner`.

    Given several jobs (sources), it reads them one after another without waiting for the parent to
    store the last one's batches: the next source is read while the last batches of the one before
    are written, so neither process waits for the other between sources.
    """

    def __init__(self, jobs: Sequence[Job]) -> None:
        context: Any = multiprocessing.get_context("fork")  # typeshed's BaseContext lacks Process
        receiving, sending = context.Pipe(duplex=False)
        _widen(sending)
        self.pipe = receiving
        self.process = context.Process(
            target=_child, args=(tuple(jobs), sending, receiving), name="cdp-ingest-worker", daemon=True
        )
        self.process.start()
        sending.close()  # the child holds the only sending end: its death reads as EOF here

    def __iter__(self) -> Iterator[Batch]:
        while True:
            try:
                message = self.pipe.recv()
            except EOFError:
                raise RuntimeError("the ingest worker process ended without finishing its input") from None
            if message is None:
                return
            if isinstance(message, BaseException):
                raise message
            yield message

    def close(self) -> None:
        self.pipe.close()
        self.process.join(timeout=5)
        if self.process.is_alive():  # the parent stopped early (an error): the child may be blocked sending
            self.process.terminate()
            self.process.join()


def _widen(pipe: Connection) -> None:
    """Give the pipe the largest buffer the system allows (Linux: ``/proc/sys/fs/pipe-max-size``, 1 MiB
    by default, instead of 64 KiB): a batch then goes through in one or two reads instead of ~20, each
    of which needs the receiving thread to take the GIL back from the storing thread, and the child
    can read ahead while the parent is busy. Where that fails, the pipe stays as it is."""
    try:
        import fcntl  # POSIX only; the worker itself needs fork, but this module is imported everywhere
    except ImportError:  # pragma: no cover - Windows
        return
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:  # pragma: no cover - not Linux
        return
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        fcntl.fcntl(pipe.fileno(), set_size, min(limit, PIPE_BYTES))
    except (OSError, ValueError):  # pragma: no cover - no /proc, or a limit lowered for this user
        pass


def worker_for(jobs: Sequence[Job], *, forced: bool) -> Worker | None:
    """A started worker for ``jobs``, or None when they are better (or only) done in-process: their
    input files hold under :data:`PARALLEL_MIN_BYTES` in all (or none is a file) and ``forced`` is
    false, or this process cannot fork safely."""
    size = sum(file_size(job.connector.config) or 0 for job in jobs)
    if not jobs or (not forced and size < PARALLEL_MIN_BYTES):
        return None
    return Worker(jobs) if can_fork() else None


def file_size(config: Mapping[str, Any]) -> int | None:
    """The size of the connector's input file, if it reads one."""
    path = config.get("path")
    if not path:
        return None
    try:
        return Path(str(path)).stat().st_size
    except OSError:
        return None
