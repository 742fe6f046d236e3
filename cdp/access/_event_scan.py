"""The events of a read handed to a consumer batch by batch, instead of as one frame.

Why it exists: a segment refresh reads ten million events only to run one pass
over them (the attributes: ``cdp.segments.attributes``). Assembling them into
one frame first costs about a second and 830 MiB at that size (every block's
columns copied into Categorical columns, then concatenated and filtered), and
the pass cannot start before the last block is decoded. A scan instead hands
each block to an :class:`EventSink` as soon as it is decoded, in the events'
order, with its label columns still as the block stores them (small codes and
the block's own labels): decoding the next blocks overlaps the pass over this
one, and no 10M-row frame is ever made (docs/benchmarks.md, Segments, twelfth
session).

A batch carries no identifier: each event's profile is a position in the keys
the caller gave (``rows``, :data:`SKIP` for an event whose profile is not
among them, or not active). The scan runs inside one policy-checked access like
``events_frame`` (``CustomerStore.scan_events``), and nothing of it is kept once
the sink has seen it.

Any events frame can be scanned too (:func:`frame_batches`): PostgreSQL's read and
the in-memory ``compute_attributes`` go that way, so the consumer has one input.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from cdp.access._event_block_format import LABEL_COLUMNS

SKIP = 0xFFFF_FFFF  # a batch row that is no profile's: the event is left out
BATCH_EVENTS = 131_072  # events per batch cut from a frame: a block of the store's read


class LabelTable:
    """What the codes of a label column stand for, for one or more batches.

    ``complete``: the table lists exactly the labels of the batch (a block's own sorted
    labels: code ``i`` is ``labels[i]``). Otherwise the codes are a Categorical's or
    Enum's physical codes, of which a batch uses a few: :meth:`names` looks them up.
    A consumer may keep what it derives from a table for as long as it holds it (the
    same object is handed over with every batch it covers).
    """

    def __init__(self, labels: Sequence[str] | None = None, *, dtype: pl.DataType | None = None) -> None:
        if (labels is None) == (dtype is None):
            raise ValueError("a label table is either a list of labels or a Categorical type")
        self.labels = list(labels) if labels is not None else None
        self.dtype = dtype
        self.complete = labels is not None
        self._physical = None if dtype is None else pl.Series([], dtype=dtype).to_physical().dtype

    def names(self, codes: Sequence[int]) -> list[str]:
        """The labels of these codes."""
        if self.labels is not None:
            return [self.labels[c] for c in codes]
        assert self.dtype is not None and self._physical is not None
        found = pl.Series(list(codes), dtype=pl.UInt32).cast(self._physical).cat.to(self.dtype)
        return [str(name) for name in found.cast(pl.String).to_list()]


@dataclass(frozen=True, eq=False)
class LabelCodes:
    """One label column of a batch: a code per event (uint8 where every code and ``null`` fit in a
    byte, else uint32), ``null`` for no label, and their table."""

    codes: np.ndarray
    null: int
    table: LabelTable

    @classmethod
    def of(cls, codes: pl.Series, table: LabelTable, null: int) -> LabelCodes:
        """From unsigned codes with nulls (no copy when they are UInt8 or UInt32 without a null).

        A block's few labels are coded in a byte: kept so, the pass reads a quarter of the bytes
        and nobody widens ten million codes a column (docs/benchmarks.md, Segments, seventeenth session).
        """
        kind = pl.UInt8 if codes.dtype == pl.UInt8 and null <= 0xFF else pl.UInt32
        array = codes.cast(kind).fill_null(null).to_numpy() if codes.null_count() else codes.cast(kind).to_numpy()
        return cls(np.ascontiguousarray(array, dtype=np.uint8 if kind == pl.UInt8 else np.uint32), null, table)


@dataclass(frozen=True, eq=False)
class EventBatch:
    """A run of events, in the store's order, without identifiers."""

    rows: np.ndarray  # uint32: the position of each event's profile in the keys (SKIP: leave it out)
    occurred_at: pl.Series  # Datetime
    revenue: pl.Series  # Float64 (null: none)
    labels: Mapping[str, LabelCodes]  # the label columns the events have (LABEL_COLUMNS)
    properties: pl.DataFrame  # row (UInt32: in this batch), properties (String): the wanted events' only

    @property
    def height(self) -> int:
        return int(self.rows.shape[0])


class EventSink(Protocol):
    """What a scan hands its batches to (``CustomerStore.scan_events``)."""

    def reset(self) -> None:
        """Forget every batch added: the scan starts over (a stored block failed its check)."""

    def add(self, batch: EventBatch) -> None:
        """Take one batch; it is not kept by the scan afterwards."""


def rows_of(positions: pl.Series) -> np.ndarray:
    """UInt32 positions (null: none) as a batch's ``rows``."""
    return positions.cast(pl.UInt32).fill_null(SKIP).to_numpy()


def coded_labels(frame: pl.DataFrame) -> dict[str, LabelCodes]:
    """The label columns of a frame (Categorical, Enum or String) as codes and tables.

    A String column is first cast to an Enum of its sorted labels; Categorical and Enum
    columns keep their physical codes, a null coded as one past the largest, with one
    table per column for every batch of the frame.
    """
    out: dict[str, LabelCodes] = {}
    for name in LABEL_COLUMNS:
        if name not in frame.columns:
            continue
        series = frame[name]
        if not isinstance(series.dtype, pl.Categorical | pl.Enum):
            text = series.cast(pl.String)
            series = text.cast(pl.Enum(text.drop_nulls().unique().sort()))
        physical = series.to_physical()
        top = physical.max() if physical.null_count() < physical.len() else None
        null = int(top) + 1 if isinstance(top, int) else 0
        out[name] = LabelCodes.of(physical, LabelTable(dtype=series.dtype), null)
    return out


def frame_batches(frame: pl.DataFrame, rows: pl.Series) -> Iterator[EventBatch]:
    """An events frame as batches: at most BATCH_EVENTS events each, within its chunks (views, not copies).

    ``rows``: per event, the position of its profile (null: leave the event out). An event
    without a time is left out too.
    """
    if rows.len() != frame.height:
        raise ValueError("one profile position per event")
    stamps = frame["occurred_at"]
    if stamps.null_count():
        rows = pl.select(pl.when(stamps.is_not_null()).then(rows)).to_series()
        stamps = stamps.fill_null(0)
    positions = rows_of(rows)
    labels = coded_labels(frame)
    revenue = (
        frame["revenue"] if "revenue" in frame.columns else pl.repeat(None, frame.height, dtype=pl.Float64, eager=True)
    )
    properties = (
        frame.select(pl.int_range(frame.height, dtype=pl.UInt32).alias("row"), pl.col("properties").cast(pl.String))
        if "properties" in frame.columns and frame["properties"].null_count() < frame.height
        else None
    )
    start = 0
    for length in stamps.chunk_lengths() if frame.height else []:
        for offset in range(0, length, BATCH_EVENTS):
            at, size = start + offset, min(BATCH_EVENTS, length - offset)
            props = pl.DataFrame(schema={"row": pl.UInt32, "properties": pl.String})
            if properties is not None:
                props = (
                    properties.slice(at, size)
                    .filter(pl.col("properties").is_not_null())
                    .with_columns(pl.col("row") - at)
                )
            yield EventBatch(
                positions[at : at + size],
                stamps.slice(at, size),
                revenue.slice(at, size),
                {
                    name: LabelCodes(column.codes[at : at + size], column.null, column.table)
                    for name, column in labels.items()
                },
                props,
            )
        start += length
