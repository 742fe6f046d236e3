"""Polars frames to and from Arrow IPC bytes, LZ4-compressed, for the encrypted derived copies.

Why it exists: every derived copy (event blocks, the golden cache, the other analytic
caches) is a frame written as Arrow IPC with LZ4, then sealed with AES-256-GCM. Polars'
own writer marks each LZ4 frame with a content checksum (XXH32), and Polars' reader then
checks it on every read: about half the CPU of decoding an event block, and a tenth of a
segment refresh's decoding side (docs/benchmarks.md, Segments, sixteenth session). The
checksum guards nothing here, since the GCM tag authenticates every byte before a frame is
decoded. Arrow's C++ writer leaves the flag off, so a copy is written through pyarrow.
The bytes are plain Arrow IPC, readable by ``pl.read_ipc`` like any other; copies written
before (with the checksum) are read as they were.

They are read back through pyarrow too (``read_ipc``), its buffers handed to Polars without
a copy: at a million profiles the golden cache's read takes 0.07 s and a few hundred page
faults instead of 0.10 s and 30,000 with ``pl.read_ipc``, which decompresses every buffer
into fresh memory and copies the strings into views again.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc

_OPTIONS = pa_ipc.IpcWriteOptions(compression="lz4")
# Rows per record batch: a file's batches are decoded in parallel (by pyarrow's reader as by
# Polars'), so the golden cache (a million profiles) reads faster in eight batches than in one;
# an event block (131,072 events) is one.
BATCH_ROWS = 131_072


def ipc_lz4(frame: pl.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC file, its buffers LZ4-compressed without content checksums.

    Polars' newest Arrow types (string and binary views) are kept, so a read is not
    converted back from large strings; record batches hold up to ``BATCH_ROWS`` rows."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    sink = pa.BufferOutputStream()
    with pa_ipc.new_file(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)
    written: bytes = sink.getvalue().to_pybytes()
    return written


def read_ipc(data: bytes | memoryview, columns: Sequence[str] | None = None, *, threads: bool = True) -> pl.DataFrame:
    """The frame of an Arrow IPC file held in ``data`` (only ``columns``, in that order, if given).

    ``threads``: decompress the buffers on Arrow's pool; False keeps the read on the calling
    thread (an event block, decoded beside the attributes' pass, which needs the other core)."""
    source = pa.py_buffer(data)
    fields = None
    if columns is not None:
        schema = pa_ipc.open_file(source).schema
        missing = [c for c in columns if schema.get_field_index(c) < 0]
        if missing:
            raise KeyError(f"columns not in the Arrow IPC file: {missing}")
        fields = [schema.get_field_index(c) for c in columns]
    options = pa_ipc.IpcReadOptions(included_fields=fields, use_threads=threads)
    table = pa_ipc.open_file(source, options=options).read_all()
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame if columns is None else frame.select(columns)
