"""Exporting a segment to a CSV file, only where policy and consent allow.

The export reads members through the access layer as the destination's
service identity with the segment's purpose, so the consent row filter and
field masking apply at the moment of export: a person who withdrew consent
after the segment was computed is not written. Values that a spreadsheet
would execute (``=``, ``+``, ``-``, ``@``) are escaped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdp.access import CustomerStore
from cdp.access.context import destination_context

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_FIELDS = ("given_name", "email", "country")


def escape_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


@dataclass(frozen=True)
class ExportReport:
    export_id: str
    path: Path
    members: int
    written: int
    excluded: int


def export_csv(
    store: CustomerStore,
    segment: str,
    *,
    purpose: str,
    out_dir: Path,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    destination: str = "file",
) -> ExportReport:
    ctx = destination_context(destination, purpose)
    members = store.segment_members(ctx, segment, action="export")
    rows = store.read_profiles(ctx, fields, profile_ids=members, action="export")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = out_dir / f"{segment}-{stamp}.csv"
    columns = ["profile_id", *[f for f in fields if not rows or f in rows[0]]]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([escape_cell(row.get(c)) for c in columns])
    path.chmod(0o600)
    export_id = store.record_export(
        ctx, segment=segment, destination=destination, location=str(path), profile_ids=[r["profile_id"] for r in rows]
    )
    return ExportReport(export_id, path, len(members), len(rows), len(members) - len(rows))
