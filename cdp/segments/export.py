"""Exporting a segment to a CSV file, only where policy and consent allow.

The export reads members through the access layer as the destination's
service identity with the segment's purpose, so the consent row filter and
field masking apply at the moment of export: a person who withdrew consent
after the segment was computed is not written. Values that a spreadsheet
would execute (``=``, ``+``, ``-``, ``@``) are escaped.
"""

from __future__ import annotations

import csv
import os
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
    chunk_size: int = 1000,
) -> ExportReport:
    """Write a segment's members to CSV, chunk by chunk, each chunk read with the consent in
    force at that moment; a final consent fence drops anyone who withdrew during the export
    before the file is published."""
    ctx = destination_context(destination, purpose)
    started = datetime.now(UTC)
    members = store.segment_members(ctx, segment, action="export")
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = started.strftime("%Y%m%dT%H%M%S%f")
    path = out_dir / f"{segment}-{stamp}.csv"
    partial = out_dir / f".{segment}-{stamp}.partial"
    decision = store.policy.decide(role=ctx.role, purpose=purpose, action="export", fields=fields, actor=ctx.actor)
    columns = ["profile_id", *(f for f in fields if decision.allowed and decision.fields[f].allowed)]
    written: list[list[str]] = []
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for start in range(0, len(members), chunk_size):
            rows = store.read_profiles(ctx, fields, profile_ids=members[start : start + chunk_size], action="export")
            for row in rows:
                cells = [escape_cell(row.get(c)) for c in columns]
                writer.writerow(cells)
                written.append(cells)
    export_id, fenced = store.record_export(
        ctx,
        segment=segment,
        destination=destination,
        location=str(path),
        profile_ids=[cells[0] for cells in written],
        fence_since=started,
    )
    if fenced:
        dropped = set(fenced)
        descriptor = os.open(partial, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(cells for cells in written if cells[0] not in dropped)
    partial.replace(path)
    count = len(written) - len(fenced)
    return ExportReport(export_id, path, len(members), count, len(members) - count)
