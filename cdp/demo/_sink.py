"""Time ordering and file writing for the demo generator.

Records are produced person by person, but real exports are in time order, and a
file grouped by person would leak the ground truth through row adjacency. The
sink spools each record to a per-source, per-month temporary file and then
merges the months in order, sorting one month at a time: output is globally
time-ordered while memory stays bounded by one month of one source.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from random import Random
from typing import IO, Final

from cdp.demo._places import UTC_OFFSETS
from cdp.demo._population import DAYS

DAY: Final = 86_400
END: Final = DAYS * DAY  # seconds in the window; every timestamp t satisfies 0 <= t < END
BUCKET: Final = 30 * DAY
BUCKETS: Final = -(-END // BUCKET)
SOURCES: Final = ("web", "pos", "survey")


class Clock:
    """Seconds since the window start <-> ISO 8601 UTC strings, with local-daytime placement."""

    def __init__(self, as_of: date) -> None:
        start = as_of - timedelta(days=DAYS)
        self._days = [f"{(start + timedelta(days=d)).isoformat()}T" for d in range(DAYS)]

    @staticmethod
    def at(rng: Random, day: int, country: str, opens: int, closes: int) -> int:
        """A moment on ``day`` between local hours ``opens`` and ``closes``, as UTC seconds."""
        t = day * DAY + rng.randrange(opens * 3600, closes * 3600) - UTC_OFFSETS[country] * 3600
        if t >= END:
            t -= DAY
        elif t < 0:
            t += DAY
        return t

    def iso(self, t: int) -> str:
        day, rest = divmod(t, DAY)
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        return f"{self._days[day]}{hour:02d}:{minute:02d}:{second:02d}Z"


def csv_row(fields: list[str]) -> str:
    """One RFC 4180 row without its line end: quote fields holding a comma, quote or line break."""
    out = []
    for f in fields:
        if '"' in f:
            out.append('"' + f.replace('"', '""') + '"')
        elif "," in f or "\n" in f or "\r" in f:
            out.append(f'"{f}"')
        else:
            out.append(f)
    return ",".join(out)


class Sink:
    """Spools records to month files, then writes each source's file in time order plus the labels."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._open: dict[tuple[str, int], IO[str]] = {}

    def add(self, source: str, t: int, record_id: str, entity: str, payload: str) -> None:
        key = (source, t // BUCKET)
        f = self._open.get(key)
        if f is None:
            f = self._open[key] = (self._tmp / f"{source}-{key[1]:03d}.tmp").open("w", encoding="utf-8")
        f.write(f"{t:08d}{record_id}\t{entity}\t{record_id}\t{payload}\n")

    def close(self) -> None:
        for f in self._open.values():
            f.close()

    def write(self, outputs: dict[str, Path], headers: dict[str, str], labels: Path) -> dict[str, int]:
        """Merge the spooled records into ``outputs`` (CRLF ends for CSV, LF for JSON lines); return counts."""
        self.close()
        counts = dict.fromkeys(SOURCES, 0)
        with labels.open("w", encoding="utf-8", newline="") as lab:
            lab.write("source,record_id,entity_id\r\n")
            for source in SOURCES:
                eol = "\r\n" if headers.get(source) else "\n"
                with outputs[source].open("w", encoding="utf-8", newline="") as out:
                    if headers.get(source):
                        out.write(headers[source] + eol)
                    for bucket in range(BUCKETS):
                        path = self._tmp / f"{source}-{bucket:03d}.tmp"
                        if not path.exists():
                            continue
                        lines = path.read_text(encoding="utf-8").split("\n")
                        lines.pop()  # the empty string after the final newline
                        lines.sort()
                        for line in lines:
                            _, entity, record_id, payload = line.split("\t", 3)
                            out.write(payload + eol)
                            lab.write(f"{source},{record_id},{entity}\r\n")
                        counts[source] += len(lines)
                        path.unlink()
        return counts
