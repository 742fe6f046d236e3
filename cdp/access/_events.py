"""Reading behavioural events for analytics (segments, insights).

Split out of ``_profiles.py`` (issue #7): the events read is the largest read a
segment refresh makes (every event of every active profile), and making it fast
is its own piece of work; keeping it in its own mixin lets that change without
touching the profile read path. It goes through ``StoreCore.access`` like every
other read: policy decision on the ``events`` resource and an audit record. A
refresh does not take the events as one frame (``events_frame``) but hands them
to its attribute pass batch by batch (``scan_events``, ``_event_scan.py``).

Why it does not simply ``select()`` the rows: turning 10 million rows into
Python tuples (and every value into a Python object) cost about 15 microseconds
an event, 155 s and 15 GB at 10 million (docs/benchmarks.md, Segments). So the rows never become Python
objects; the database hands them over a column at a time, in bulk, and Polars
parses them:

- SQLite: per range of ``rowid`` (about 131k events), one ``json_group_array``
  per column (SQLite escapes the text itself, in C); the JSON arrays are
  decoded by Polars in a second thread while SQLite builds the next range. The join to the active
  profiles is not done by SQLite (one B-tree look-up per event, slower than the
  whole scan): the active profile ids are read in the same transaction
  (``BEGIN IMMEDIATE``, so one snapshot) and the events filtered in Polars.
- PostgreSQL: ``COPY (SELECT ... JOIN profiles ...) TO STDOUT`` as CSV,
  parsed by Polars (one statement, so one snapshot); times as integer
  microseconds since the epoch.
- any other database: the plain SQLAlchemy rows.

Nothing is written outside the database: no file or temporary file. On SQLite the read keeps an
encrypted columnar copy of what it decoded inside the database (``_event_blocks.py``), kept exact
by triggers; this module's row readers are what that copy is built from and checked against.
The result has the columns and values of before; ``profile_id`` is now an
``Enum`` of the active profile ids (the filter to active profiles is that cast),
so a consumer can map 10 million events to profile positions through the codes
instead of hashing 10 million strings again; event properties are the stored
JSON text rather than re-serialised with sorted keys (null for none or ``{}``). ``tests/test_segments_events_read.py``
checks the fast readers against the portable one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, select

from cdp.access import _tables as t
from cdp.access._core import StoreCore
from cdp.access._event_scan import EventSink, frame_batches
from cdp.access.context import AccessContext

EVENT_FIELDS = (
    "profile_id",
    "event_type",
    "event_name",
    "occurred_at",
    "revenue",
    "currency",
    "channel",
    "store_id",
    "category",
)
TIME = pl.Datetime("us", "UTC")
# The text columns with few distinct values are Categorical: a label per event costs a code,
# not a string (10M events), and the columnar copy (``_event_blocks.py``) stores them so.
LABELS = ("event_type", "event_name", "currency", "channel", "store_id", "category")
SCHEMA: dict[str, Any] = {
    "profile_id": pl.String,
    "event_type": pl.Categorical,
    "event_name": pl.Categorical,
    "occurred_at": TIME,
    "revenue": pl.Float64,
    "currency": pl.Categorical,
    "channel": pl.Categorical,
    "store_id": pl.Categorical,
    "category": pl.Categorical,
    "properties": pl.String,
}
SQLITE_CHUNK = 131_072  # events per range of rowid: a few MB of JSON text per column
_SQLITE_TIMES = ("%Y-%m-%d %H:%M:%S.%6f", "%Y-%m-%d %H:%M:%S%.f")  # SQLAlchemy's DATETIME text on SQLite


def _properties_sql(column: str, properties_of: Collection[str] | None) -> tuple[str, list[str]]:
    """SQL for the properties text: NULL for none (or an empty object), and outside ``properties_of``."""
    value = f"NULLIF(NULLIF(CAST({column} AS TEXT), 'null'), '{{}}')"
    if properties_of is None:
        return value, []
    names = sorted(properties_of)
    if not names:
        return "CAST(NULL AS TEXT)", []
    return f"CASE WHEN e.event_name IN ({', '.join(['?'] * len(names))}) THEN {value} END", names


POSITION = "profile_row"
"""With ``positions_of``: the column that replaces ``profile_id``, each event's profile's position."""


POSITIONED_SCHEMA: dict[str, Any] = {
    (POSITION if c == "profile_id" else c): (pl.UInt32 if c == "profile_id" else k) for c, k in SCHEMA.items()
}
"""``SCHEMA`` with ``profile_row`` (UInt32) in the place of ``profile_id``."""


def _empty(positions: bool = False) -> pl.DataFrame:
    return pl.DataFrame(schema=POSITIONED_SCHEMA if positions else {**SCHEMA, "profile_id": pl.Enum([])})


def check_keys(keys: pl.Series) -> pl.Series:
    """``keys`` as String profile ids, refused unless unique (a repeated id would repeat its events)."""
    ids = keys.cast(pl.String)
    ascending = ids.len() < 2 or bool((ids.slice(1) > ids.slice(0, ids.len() - 1)).all())
    if ids.null_count() or not (ascending or ids.n_unique() == ids.len()):
        raise ValueError("positions_of must be unique profile ids")
    return ids


def _positioned(frame: pl.DataFrame, keys: pl.Series, active: pl.Series) -> pl.DataFrame:
    """``frame`` (``profile_id`` String) with ``profile_row``, the position of each event's profile
    in ``keys``, in its place; events of profiles not in ``keys`` or not ``active`` are left out."""
    index = keys.alias("profile_id").to_frame().with_row_index(POSITION)
    index = index.filter(pl.col("profile_id").is_in(active.implode()))
    rows = frame.select("profile_id").join(index, on="profile_id", how="left", maintain_order="left")[POSITION]
    out = frame.with_columns(rows).select(list(POSITIONED_SCHEMA))
    return out.filter(pl.col(POSITION).is_not_null())


def _range_sql(properties_of: Collection[str] | None) -> tuple[str, list[str]]:
    """SQLite: one range of rowids as a count and one JSON array per column; its event-name parameters."""
    properties, names = _properties_sql("e.properties", properties_of)
    # REAL as JSON keeps only 15 digits: the revenue goes as exact text (17 digits) instead.
    exact = "CASE WHEN e.revenue IS NULL THEN NULL ELSE printf('%!.17g', e.revenue) END"
    columns = [exact if c == "revenue" else f"e.{c}" for c in EVENT_FIELDS]
    sql = (
        "SELECT count(*), "
        + ", ".join(f"json_group_array({c})" for c in [*columns, properties])
        + " FROM events AS e WHERE e.rowid >= ? AND e.rowid < ?"
    )
    return sql, names


def _read_sqlite(
    conn: Connection, properties_of: Collection[str] | None, keys: pl.Series | None = None
) -> pl.DataFrame:
    """All events (active profiles only), a column at a time as JSON arrays (see the module docstring)."""
    sql, names = _range_sql(properties_of)
    decoded: list[Future[pl.DataFrame]] = []
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    # While SQLite builds the next range's JSON (it lets go of the GIL), a thread decodes the last.
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            low, high = _rowid_bounds(cursor)
            start = low
            while start is not None and high is not None and start <= high:
                row = cursor.execute(sql, [*names, start, start + SQLITE_CHUNK]).fetchone()
                if row[0]:
                    decoded.append(pool.submit(_decode_sqlite, conn, tuple(row[1:])))
                    start += SQLITE_CHUNK
                else:  # a gap in the rowids (deleted events): seek to the next one
                    start = cursor.execute("SELECT min(rowid) FROM events WHERE rowid >= ?", [start]).fetchone()[0]
            active = cursor.execute("SELECT json_group_array(id) FROM profiles WHERE status = 'active'").fetchone()[0]
        finally:
            cursor.close()
        frames = [part.result() for part in decoded]
    if not frames:
        return _empty(keys is not None)
    ids = pl.Series("profile_id", [active]).str.json_decode(pl.List(pl.String)).explode()
    return _keyed(pl.concat(frames, rechunk=False), ids, keys)


def _rowid_bounds(cursor: Any) -> tuple[int | None, int | None]:
    """The first and last rowid of ``events``: two statements, because SQLite answers ``min()`` or
    ``max()`` alone from the B-tree's ends, but ``SELECT min(rowid), max(rowid)`` by a full scan
    (2 s at 10M events)."""
    low = cursor.execute("SELECT min(rowid) FROM events").fetchone()[0]
    high = cursor.execute("SELECT max(rowid) FROM events").fetchone()[0]
    return low, high


def _decode_sqlite(conn: Connection, arrays: tuple[str, ...]) -> pl.DataFrame:
    """One range's JSON arrays (one per column) as a frame, with its times and amounts parsed."""
    text = pl.DataFrame([arrays], schema=list(SCHEMA), orient="row")
    frame = text.select(pl.col(name).str.json_decode(pl.List(pl.String)) for name in SCHEMA).explode(list(SCHEMA))
    return frame.with_columns(
        _sqlite_times(conn, frame["occurred_at"]),
        pl.col("revenue").cast(pl.Float64),
        *(pl.col(c).cast(pl.Categorical) for c in LABELS),
    )


def _sqlite_times(conn: Connection, text: pl.Series) -> pl.Series:
    """SQLAlchemy's DATETIME text on SQLite as UTC times (the offset is not stored: they are UTC)."""
    for pattern in _SQLITE_TIMES:  # the fixed-width form first: Polars parses it several times faster
        stamps = text.str.to_datetime(pattern, time_unit="us", time_zone="UTC", strict=False)
        if stamps.null_count() == text.null_count():
            return stamps
    from sqlalchemy import DateTime  # not SQLAlchemy's text after all: its own parser, value by value

    parse = DateTime(timezone=True).result_processor(conn.dialect, None)
    assert parse is not None
    return pl.Series(text.name, [parse(v) for v in text.to_list()], dtype=TIME)


def _read_postgres(
    conn: Connection, properties_of: Collection[str] | None, keys: pl.Series | None = None
) -> pl.DataFrame:
    """All events of active profiles, as the CSV of one ``COPY`` (see the module docstring)."""
    properties, names = _properties_sql("e.properties", properties_of)
    properties = properties.replace("?", "%s")
    columns = [
        "e.profile_id",
        "e.event_type",
        "e.event_name",
        "(extract(epoch FROM e.occurred_at) * 1000000)::bigint",
        "e.revenue",
        "e.currency",
        "e.channel",
        "e.store_id",
        "e.category",
        properties,
    ]
    sql = (
        f"COPY (SELECT {', '.join(columns)} FROM events AS e JOIN profiles AS p ON p.id = e.profile_id"
        " WHERE p.status = 'active') TO STDOUT WITH (FORMAT csv)"
    )
    buffer = io.BytesIO()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(sql, names or None) as copy:
            for block in copy:
                buffer.write(block)
    finally:
        cursor.close()
    if not buffer.tell():
        return _empty(keys is not None)
    schema = {**SCHEMA, "occurred_at": pl.Int64}
    frame = pl.read_csv(buffer.getvalue(), has_header=False, schema=schema)
    del buffer
    # After the events (a later snapshot): a profile no longer active by now loses its events here.
    frame = _keyed(frame, _active_ids(conn), keys)
    # COPY writes an empty string as "" and NULL as nothing; Polars reads both as null. (Empty
    # strings are not kept by ingestion: it stores a missing value as NULL.)
    return frame.with_columns(pl.col("occurred_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))


def _read_rows(conn: Connection, properties_of: Collection[str] | None, keys: pl.Series | None = None) -> pl.DataFrame:
    """The portable path: SQLAlchemy rows, one Python tuple per event."""
    wanted = None if properties_of is None else set(properties_of)
    rows = conn.execute(
        select(*(t.events.c[name] for name in EVENT_FIELDS), t.events.c.properties)
        .join(t.profiles, t.profiles.c.id == t.events.c.profile_id)
        .where(t.profiles.c.status == "active")
    ).all()
    out: Sequence[tuple[Any, ...]] = [
        (*r[:-1], json.dumps(r[-1], sort_keys=True) if r[-1] and (wanted is None or r[2] in wanted) else None)
        for r in rows
    ]
    if not out:
        return _empty(keys is not None)
    return _keyed(pl.DataFrame(out, schema=SCHEMA, orient="row"), _active_ids(conn), keys)


def _active_ids(conn: Connection) -> pl.Series:
    ids = conn.execute(select(t.profiles.c.id).where(t.profiles.c.status == "active")).scalars().all()
    return pl.Series("profile_id", ids, dtype=pl.String)


def _people(profile_ids: pl.Series) -> int:
    """How many distinct profiles the events belong to (counted on the Enum's codes or the
    positions: 10x faster than on strings)."""
    if not profile_ids.len():
        return 0
    codes = profile_ids.drop_nulls().to_physical().to_numpy()
    return int(np.count_nonzero(np.bincount(codes))) if codes.size else 0


def _keyed(frame: pl.DataFrame, active: pl.Series, keys: pl.Series | None = None) -> pl.DataFrame:
    """The events of ``active`` profiles only, their ``profile_id`` an Enum of those ids; with
    ``keys``, of those among them only, each with its position in ``keys`` (``profile_row``).

    One hash look-up per event, which also drops the events of other profiles; the
    attributes then find each event's profile position from the Enum's codes (a look-up
    of the 1M categories, not of the 10M events: see ``cdp.segments.attributes``).
    """
    if keys is not None:
        return _positioned(frame, keys, active)
    ids = pl.Enum(active.sort())
    coded = frame.with_columns(pl.col("profile_id").cast(ids, strict=False))
    return coded.filter(pl.col("profile_id").is_not_null())


class EventMixin(StoreCore):
    def events_frame(
        self,
        ctx: AccessContext,
        *,
        properties_of: Collection[str] | None = None,
        positions_of: pl.Series | None = None,
    ) -> pl.DataFrame:
        """Behavioural events of resolved (active) profiles, for analytics (no identifiers).

        ``profile_id`` is a ``pl.Enum`` whose categories are the active profile ids (cast it to
        ``pl.String`` to join it with string ids).

        ``properties_of``: the event names whose properties are wanted (the others get
        none, and are not read); None (the default) reads the properties of every event.

        ``positions_of``: unique profile ids (a profile frame's, for instance). The frame then
        has ``profile_row`` (UInt32) instead of ``profile_id``: the position of the event's
        profile in them; events of profiles not among them (or not active) are left out.
        A segment refresh reads this way, as no 1M-category ``Enum`` is then built (~0.3 s).
        """
        keys = None if positions_of is None else check_keys(positions_of)
        fields = (*EVENT_FIELDS, "event_properties")
        with self.access(ctx, action="read", resource="events", fields=fields) as work:
            conn = work.connection
            dialect = conn.dialect.name
            if dialect == "sqlite":
                from cdp.access._event_blocks import read_sqlite  # it builds on this module

                frame = read_sqlite(self, conn, properties_of, keys)
            elif dialect == "postgresql" and conn.dialect.driver == "psycopg":
                frame = _read_postgres(conn, properties_of, keys)
            else:
                frame = _read_rows(conn, properties_of, keys)
            work.subject_count = _people(frame[POSITION if keys is not None else "profile_id"])
            return frame

    def scan_events(
        self,
        ctx: AccessContext,
        sink: EventSink,
        *,
        positions_of: pl.Series,
        properties_of: Collection[str] | None = None,
        decoded: Callable[[], object] | None = None,
    ) -> int:
        """The events ``events_frame(ctx, positions_of=..., properties_of=...)`` would return, handed
        to ``sink`` batch by batch instead (``_event_scan.py``): the same policy decision and audit.

        On SQLite each stored block goes to the sink as soon as it is decoded, so the sink's work
        overlaps the decoding and no frame of every event is assembled; elsewhere the frame is read
        and handed over in batches. Returns how many of ``positions_of``'s profiles have events.
        ``decoded``: called once every event is read and decoded, while the sink may still have
        batches to take (on SQLite, from the decoding thread): work that needs no event can start
        on the core the decoding leaves.
        """
        keys = check_keys(positions_of)
        fields = (*EVENT_FIELDS, "event_properties")
        with self.access(ctx, action="read", resource="events", fields=fields) as work:
            conn = work.connection
            dialect = conn.dialect.name
            if dialect == "sqlite":
                from cdp.access._event_blocks import scan_sqlite  # it builds on this module

                people = scan_sqlite(self, conn, properties_of, keys, sink, decoded)
            else:
                frame = (
                    _read_postgres(conn, properties_of, keys)
                    if dialect == "postgresql" and conn.dialect.driver == "psycopg"
                    else _read_rows(conn, properties_of, keys)
                )
                if decoded is not None:
                    decoded()
                for batch in frame_batches(frame, frame[POSITION]):
                    sink.add(batch)
                people = _people(frame[POSITION])
            work.subject_count = people
            return people
