"""The derived copies' Arrow IPC bytes (``cdp/access/_arrow_ipc.py``).

They must read back as the frame written, every type the copies hold included, by
Polars' reader and by ``read_ipc``; their LZ4 frames must not carry a content checksum:
Polars checks one on every read (half an event block's decoding), and the AES-GCM tag
already authenticates the bytes. Copies written before, by Polars, must still be read.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import cdp
from cdp.access import _event_block_format as block_format
from cdp.access._arrow_ipc import ipc_lz4, read_ipc

_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
_CONTENT_CHECKSUM = 0x04  # the FLG byte's bit: the frame ends with an XXH32 of its content


def _lz4_frame_flags(data: bytes) -> list[int]:
    """The FLG byte of each LZ4 frame in an Arrow IPC file's compressed buffers."""
    return [data[match.end()] for match in re.finditer(re.escape(_LZ4_FRAME_MAGIC), data)]


def _every_type() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "int8": pl.Series([1, None, -3], dtype=pl.Int8),
            "uint32": pl.Series([1, 2, 3], dtype=pl.UInt32),
            "float": [1.5, None, float("inf")],
            "text": ["a", None, "長い文字列" * 20],
            "flag": [True, None, False],
            "day": [date(2020, 1, 1), None, date(1970, 1, 1)],
            "at": pl.Series([datetime(2020, 1, 1, 1, tzinfo=UTC), None, None], dtype=pl.Datetime("us", "UTC")),
            "span": [timedelta(days=1), None, timedelta(0)],
            "category": pl.Series(["x", None, "y"], dtype=pl.Categorical),
            "enum": pl.Series(["x", "y", None], dtype=pl.Enum(["y", "x"])),
            "listed": [["a"], None, []],
            "nested": [{"a": 1, "b": "x"}, None, {"a": None, "b": None}],
            "money": pl.Series([Decimal("1.20"), None, Decimal("-3.00")], dtype=pl.Decimal(10, 2)),
            "raw": [b"x", None, b"\x00"],
            "empty": [None, None, None],
        }
    )


def test_a_frame_of_every_type_reads_back_as_written() -> None:
    frame = _every_type()
    data = ipc_lz4(frame)
    for read in (pl.read_ipc(io.BytesIO(data)), read_ipc(data), read_ipc(memoryview(data))):
        assert read.schema == frame.schema
        assert read.equals(frame)
    empty = frame.clear()
    assert pl.read_ipc(io.BytesIO(ipc_lz4(empty))).equals(empty)
    assert read_ipc(ipc_lz4(empty)).schema == frame.schema


def test_read_ipc_decodes_the_columns_asked_for_in_their_order() -> None:
    frame = _every_type()
    data = ipc_lz4(frame)
    assert read_ipc(data, ["enum", "int8", "text"]).equals(frame.select("enum", "int8", "text"))
    with pytest.raises(KeyError, match="missing"):
        read_ipc(data, ["int8", "missing"])


def test_copies_written_by_polars_with_checksums_or_uncompressed_are_still_read() -> None:
    frame = pl.concat([_every_type()] * 50_000)  # several record batches
    for compression in ("lz4", "uncompressed"):
        written = io.BytesIO()
        frame.write_ipc(written, compression=compression)
        assert read_ipc(written.getvalue()).equals(frame)


def test_the_lz4_frames_carry_no_content_checksum() -> None:
    frame = pl.DataFrame({"n": range(50_000), "text": [f"value {i % 97}" for i in range(50_000)]})
    polars_written = io.BytesIO()
    frame.write_ipc(polars_written, compression="lz4")
    checked = _lz4_frame_flags(polars_written.getvalue())
    assert checked and all(flag & _CONTENT_CHECKSUM for flag in checked)  # what the check detects

    flags = _lz4_frame_flags(ipc_lz4(frame))
    assert len(flags) >= 2  # the numbers and the strings' views, each compressed
    assert not any(flag & _CONTENT_CHECKSUM for flag in flags)


def test_event_blocks_are_written_without_content_checksums() -> None:
    core = pl.DataFrame(
        {
            "rowid": range(1000),
            **{name: [f"{name}-{i % 7}" for i in range(1000)] for name in block_format.LABEL_COLUMNS},
            "revenue": [i / 10 for i in range(1000)],
        }
    )
    props = pl.DataFrame({"row": pl.Series(range(1000), dtype=pl.UInt32), "properties": ["{}"] * 1000})
    for data in (block_format.encode_core(core), block_format.encode_props(props, core["event_name"])):
        flags = _lz4_frame_flags(data)
        assert flags and not any(flag & _CONTENT_CHECKSUM for flag in flags)
    assert (
        block_format.decode_core(block_format.encode_core(core))
        .select(pl.all().cast(pl.String))
        .equals(core.select(pl.all().cast(pl.String)))
    )


def test_no_derived_copy_is_written_by_polars_own_ipc_writer() -> None:
    package = Path(cdp.__file__).parent
    writers = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if ".write_ipc(" in line
    ]
    assert writers == []
