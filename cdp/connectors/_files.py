"""Incremental, fault-tolerant reading of CSV and JSON-lines files.

State per file is the byte offset and line reached plus a fingerprint of the
file's head, so a re-run of a grown (appended) file reads only the new part,
and a replaced file is read again from the start (record-level idempotency
then drops what was already stored). Bad bytes, invalid JSON and ragged CSV
rows become error items naming the line; they never stop the read.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp._exceptions import UnknownSourceError
from cdp.connectors._parse import json_loads
from cdp.connectors.base import ReadResult, SourceItem

HEAD_BYTES = 4096
MAX_LINE_BYTES = 1_000_000


def _fingerprint(path: Path, upto: int) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(min(upto, HEAD_BYTES))).hexdigest()


@dataclass
class _Cursor:
    """Where the reader is, and the file-head fingerprint (constant once past HEAD_BYTES)."""

    path: Path
    line: int
    end: int
    bad: str = ""
    _full_head: str | None = None

    def head(self) -> str:
        if self.end < HEAD_BYTES:
            return _fingerprint(self.path, self.end)
        if self._full_head is None:
            self._full_head = _fingerprint(self.path, HEAD_BYTES)
        return self._full_head


def _resume_point(path: Path, state: Mapping[str, Any]) -> tuple[int, int, list[str] | None]:
    saved = state.get(str(path))
    if not isinstance(saved, dict):
        return 0, 0, None
    offset = int(saved.get("offset", 0))
    if offset <= 0 or path.stat().st_size < offset or _fingerprint(path, offset) != saved.get("head"):
        return 0, 0, None
    header = saved.get("header")
    return offset, int(saved.get("line", 0)), list(header) if isinstance(header, list) else None


def _lines(path: Path, offset: int, line_no: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield (line number, end offset, raw bytes) from ``offset``."""
    with path.open("rb") as handle:
        handle.seek(offset)
        position = offset
        for raw in handle:
            position += len(raw)
            line_no += 1
            yield line_no, position, raw


def check_file(path_text: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        raise UnknownSourceError(f"source file not found: {path_text}")
    return path


def read_jsonl(path: Path, stream: str, state: Mapping[str, Any], result: ReadResult) -> Iterator[SourceItem]:
    offset, line_no, _ = _resume_point(path, state)
    cursor = _Cursor(path, line_no, offset)
    name, key = path.name, str(path)
    for number, end, raw in _lines(path, offset, line_no):
        cursor.line, cursor.end = number, end
        where = f"{name}:{number}"
        if raw.strip():
            if len(raw) > MAX_LINE_BYTES:
                yield SourceItem(
                    stream,
                    where,
                    raw.decode("utf-8", errors="replace").strip()[:2000],
                    error=f"line is {len(raw)} bytes, over the {MAX_LINE_BYTES} limit",
                    error_field="(size)",
                )
            else:
                try:
                    decoded = raw.decode("utf-8").strip()
                except UnicodeDecodeError as exc:
                    text = raw.decode("utf-8", errors="replace").strip()  # decoded so only where it is needed
                    yield SourceItem(
                        stream, where, text, error=f"invalid UTF-8 at byte {exc.start}", error_field="(encoding)"
                    )
                else:
                    try:
                        data = json_loads(decoded)
                    except json.JSONDecodeError as exc:
                        yield SourceItem(
                            stream,
                            where,
                            decoded,
                            error=f"invalid JSON: {exc.msg} at column {exc.colno}",
                            error_field="(json)",
                        )
                    else:
                        if isinstance(data, dict):
                            yield SourceItem(stream, where, decoded, data=data)
                        else:
                            yield SourceItem(
                                stream,
                                where,
                                decoded,
                                error=f"expected a JSON object, got {type(data).__name__}",
                                error_field="(json)",
                            )
        result.state[key] = {"offset": end, "line": number, "head": cursor.head()}


def read_csv(
    path: Path, stream: str, state: Mapping[str, Any], result: ReadResult, *, delimiter: str = ","
) -> Iterator[SourceItem]:
    offset, line_no, header = _resume_point(path, state)
    source = _lines(path, offset, line_no)
    cursor = _Cursor(path, line_no, offset)
    physical: list[tuple[int, str]] = []  # the lines of the row being parsed

    def text_lines() -> Iterator[str]:
        for number, end, raw in source:
            cursor.line, cursor.end = number, end
            if b"\0" in raw:
                cursor.bad = cursor.bad or "contains a NUL byte"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                cursor.bad = cursor.bad or f"invalid UTF-8 at byte {exc.start}"
                line = raw.decode("utf-8", errors="replace")
            physical.append((number, line))
            yield line

    lines = text_lines()
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    while True:
        physical.clear()
        try:
            row: list[str] | None = next(reader)
            error = ""
        except StopIteration:
            break
        except csv.Error as exc:  # a field over csv.field_size_limit(): the reader starts afresh after it
            row, error = None, f"unreadable CSV: {exc}"
            reader = csv.reader(lines, delimiter=delimiter, strict=False)
        if header is None and row is not None:
            header = [h.strip() for h in row]
        elif header is not None:
            yield from _csv_items(stream, path.name, physical, row, header, cursor.bad or error, delimiter)
        cursor.bad = ""
        result.state[str(path)] = {"offset": cursor.end, "line": cursor.line, "head": cursor.head(), "header": header}


def _csv_items(
    stream: str,
    name: str,
    physical: list[tuple[int, str]],
    row: list[str] | None,
    header: list[str],
    error: str,
    delimiter: str,
) -> Iterator[SourceItem]:
    """The item(s) of one parsed row. A bad row spanning several lines (an unbalanced quote swallowing
    the lines after it) is taken apart line by line, so one stray quote cannot hide the rows it ate."""
    where = f"{name}:{physical[0][0] if physical else '?'}"
    if row is not None and not any(cell.strip() for cell in row):
        return
    if len(physical) > 1 and (error or row is None or len(row) != len(header)):
        for number, line in physical:
            cells: list[str] | None
            try:
                cells, bad = next(csv.reader([line], delimiter=delimiter, strict=False), []), ""
            except csv.Error as exc:
                cells, bad = None, f"unreadable CSV: {exc}"
            if ("NUL" in error and "\0" in line) or ("UTF-8" in error and "\ufffd" in line):
                bad = error
            yield from _csv_items(stream, name, [(number, line)], cells, header, bad, delimiter)
        return
    # The row's own text as read (its physical line, or lines for a quoted field holding line breaks).
    joined = "".join(line for _, line in physical)
    text = joined.rstrip("\r\n") if row is not None else joined[:100_000]
    if error:
        yield SourceItem(stream, where, text, error=error, error_field=_damage(error))
    elif row is None or len(row) != len(header):
        message = f"row has {len(row or [])} columns, the header has {len(header)}"
        yield SourceItem(stream, where, text, error=message, error_field="(columns)")
    else:
        yield SourceItem(stream, where, text, data=dict(zip(header, row, strict=True)))


def _damage(error: str) -> str:
    """The pseudo-field naming what kind of damage made a row unreadable."""
    if "UTF" in error or "NUL" in error:
        return "(encoding)"
    return "(size)" if "larger than field limit" in error else "(csv)"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
