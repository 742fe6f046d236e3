"""The plaintext layout of an event block (``_event_blocks.py``), before it is encrypted.

Why it exists: reading the blocks is most of a segment refresh's events read, and
most of that was Polars registering each block's Categorical columns (about 1 ms a
column a block, whatever their size) and decoding every event's properties when a
refresh wants only the survey answers' (docs/benchmarks.md, Segments, round 5).
So a block in the second format keeps

- the label columns (event type and name, currency, channel, store, category) as
  small integer codes into the block's own sorted labels, which are listed in a
  JSON header; a read turns the codes back into Categorical values with one
  ``gather`` from the few labels;
- the properties as one Arrow IPC part per event name, listed in the header with
  their offsets, so a read decodes only the parts of the event names it wants.

``MAGIC | header length (4 bytes, big-endian) | header JSON | Arrow IPC parts``

A block in the first format is a plain Arrow IPC file (it starts with ``ARROW1``):
it is still read; new blocks are written in the second format. Both are sealed with
AES-256-GCM by ``_event_blocks.py``; nothing here touches a key or a file.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import polars as pl

from cdp.access._arrow_ipc import ipc_lz4, read_ipc

MAGIC = b"CDPEB2"
LABEL_COLUMNS = ("event_type", "event_name", "currency", "channel", "store_id", "category")
PROPS_SCHEMA = {"row": pl.UInt32, "properties": pl.String}


def _pack(header: dict[str, Any], parts: list[bytes]) -> bytes:
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    return b"".join([MAGIC, len(head).to_bytes(4, "big"), head, *parts])


def _unpack(plain: bytes) -> tuple[dict[str, Any], memoryview]:
    size = int.from_bytes(plain[len(MAGIC) : len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4
    header = json.loads(plain[start : start + size])
    if not isinstance(header, dict):
        raise ValueError("event block header is not an object")
    return header, memoryview(plain)[start + size :]


def encode_core(frame: pl.DataFrame) -> bytes:
    """A block's columns (labels Categorical or String) in the second format."""
    labels: dict[str, list[str]] = {}
    coded: list[pl.Series] = []
    for name in LABEL_COLUMNS:
        text = frame[name].cast(pl.String)
        listed = text.drop_nulls().unique().sort()
        labels[name] = listed.to_list()
        coded.append(text.cast(pl.Enum(listed)).to_physical().alias(name))
    return _pack({"labels": labels}, [ipc_lz4(frame.with_columns(coded))])


def decode_core(plain: bytes) -> pl.DataFrame:
    """A block's columns, the labels Categorical (either format)."""
    if not plain.startswith(MAGIC):
        return read_ipc(plain, threads=False)  # the first format: Categorical columns as they were
    return categorical_labels(*decode_core_codes(plain))


def categorical_labels(frame: pl.DataFrame, labels: dict[str, list[str]]) -> pl.DataFrame:
    """A second-format block's columns (``decode_core_codes``) with the labels Categorical."""
    return frame.with_columns(
        pl.Series(name, labels[name], dtype=pl.String).cast(pl.Categorical).gather(frame[name])
        for name in LABEL_COLUMNS
    )


def decode_core_codes(plain: bytes) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """A block's columns in the second format as stored: the labels as codes into its sorted labels."""
    header, body = _unpack(plain)
    labels: dict[str, list[str]] = header["labels"]
    return read_ipc(body, threads=False), labels


def encode_props(props: pl.DataFrame, names: pl.Series) -> bytes:
    """``props`` (row, properties) in the second format; ``names``: the event name of each of its rows."""
    grouped = props.with_columns(names.cast(pl.String).alias("_name")).partition_by(
        "_name", as_dict=True, maintain_order=True
    )
    parts: list[bytes] = []
    index: list[list[Any]] = []
    offset = 0
    for (name, *_), part in grouped.items():
        data = ipc_lz4(part.drop("_name"))
        index.append([name, offset, len(data)])
        parts.append(data)
        offset += len(data)
    return _pack({"parts": index}, parts)


def decode_props(plain: bytes, wanted: Collection[str] | None) -> tuple[pl.DataFrame, bool]:
    """(row, properties) of the events named in ``wanted`` (None: all); and whether that filter is
    applied already (a block in the first format holds one part: every event's, filtered later)."""
    if not plain.startswith(MAGIC):
        return read_ipc(plain, threads=False), False
    header, body = _unpack(plain)
    frames = [
        read_ipc(body[offset : offset + length], threads=False)
        for name, offset, length in header["parts"]
        if wanted is None or name in wanted
    ]
    return (pl.concat(frames) if frames else pl.DataFrame(schema=PROPS_SCHEMA)), True
