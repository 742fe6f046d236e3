"""Evaluating compiled segments on DuckDB over in-memory Polars/Arrow frames.

The frames come from the access layer (policy-checked, no direct
identifiers). DuckDB runs in memory only, with external access disabled and
no spilling to temporary files (``cdp._memory_duckdb``): no plaintext can land
in a DuckDB file or a temporary file.

Event-history conditions of every segment are gathered first and computed in
one Polars pass over the events (one count and one revenue column per
distinct event spec); the segment queries then filter that shared, one row
per profile ``base`` table instead of scanning raw events once per segment.
Tag conditions read boolean columns of ``base`` computed from the classifiers'
tag columns (and from the few tags held as rows), and :meth:`SegmentEngine.evaluate`
runs every segment in one SELECT (a bit per segment; a referenced segment's
condition repeated where it is referenced), so a refresh of 20 segments is one
query per core, each scanning ``base`` for its share of the segments.

How DuckDB is given the data and the values: ``base`` as a bare Arrow C stream
registered again before each query (DuckDB reads a registered Arrow *table*
through ``pyarrow.dataset``, whose import imports pandas: ~0.25 s a process,
holding the GIL); the small tables a query may read twice (``consents``,
``segmembers``) copied into the in-memory database when a query first names
them; a query's parameters read from a one-row table of their own through a
variable, never written into the SQL text, nor bound by DuckDB's Python API
(which imports pandas to look at them).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from cdp._memory_duckdb import memory_only_connection, refusing_to_spill
from cdp.segments._member_bits import count_bits, fill_bits
from cdp.segments.attributes import PROFILE_ROW, spec_columns
from cdp.segments.classify.base import attach_columns
from cdp.segments.config import TagsConfig
from cdp.segments.definition import (
    ROW_POSITION,
    CompiledSegment,
    EventSpec,
    Segment,
    column_kinds,
    compile_segment,
    merge_specs,
    order_segments,
    spec_columns_read,
    tag_column,
)

CONSENTS_SCHEMA = {"profile_id": pl.String, "purpose": pl.String, "status": pl.String, "allowed": pl.Boolean}
POSITION = ROW_POSITION  # each row's position in ``base``, as registered in DuckDB
MEMBERS_SCHEMA = {"segment": pl.String, POSITION: pl.UInt32}  # members by their row in ``base``
SEGMENTS_PER_WORD = 62  # segments answered per BIGINT of a query's result (bits 0..61)
QUERY_THREADS = min(4, os.cpu_count() or 1)  # queries run at once to answer one level of segments
PARALLEL_MIN_ROWS = 100_000  # below this many profiles, one query: a second costs more than it saves


def event_aggregates(
    events: pl.DataFrame, specs: Sequence[EventSpec], *, as_of: datetime, config: TagsConfig | None = None
) -> pl.DataFrame:
    """One row per profile with a count and a revenue column per spec (profiles without events are absent)."""
    if not specs or events.height == 0:
        return pl.DataFrame(schema={"profile_id": pl.String})
    if events.schema["profile_id"] != pl.String:  # the store hands over an Enum of the profile ids
        events = events.with_columns(pl.col("profile_id").cast(pl.String))
    names = sorted({s.event for s in specs})
    horizon = max(s.start_days for s in specs)
    now = pl.lit(as_of).cast(pl.Datetime("us", "UTC"))
    relevant = events.filter(
        pl.col("event_name").is_in(names)
        & (pl.col("occurred_at") <= now)
        & (pl.col("occurred_at") >= now.dt.offset_by(f"-{horizon}d"))
    )
    helpers, columns_flat = spec_columns(relevant, specs, as_of=as_of, config=config or TagsConfig())
    # Flat per-row columns first, then plain sums per profile: fast even with a million groups.
    columns = [c for s in specs for c in (s.count_column, s.revenue_column)]
    return (
        relevant.lazy()
        .with_columns(helpers)
        .select("profile_id", *columns_flat)
        .group_by("profile_id")
        .agg(pl.col(c).sum() for c in columns)
        .with_columns(pl.col(s.count_column).cast(pl.Int32) for s in specs)
        .collect()
    )


def tag_flags(tags: pl.DataFrame, wanted: Iterable[str]) -> pl.DataFrame:
    """profile_id and one boolean column per wanted tag (only profiles holding at least one of them)."""
    names = sorted(set(wanted))
    held = tags.filter(pl.col("tag").is_in(names)).unique()
    flat = held.lazy().select("profile_id", *[(pl.col("tag") == name).alias(tag_column(name)) for name in names])
    return flat.group_by("profile_id").agg(pl.all().max()).collect()


def column_flags(tag_frame: pl.DataFrame, wanted: Iterable[str]) -> pl.DataFrame:
    """profile_id and one boolean column per wanted tag, read from tag columns (rows as in ``tag_frame``).

    Column ``p`` holding ``v`` (or a list containing ``v``) means the tag
    ``p:v`` (see :class:`cdp.segments.classify.base.Classification`).
    """
    flags: list[pl.Expr] = []
    for name in sorted(set(wanted)):
        found: list[pl.Expr] = []
        for prefix, dtype in tag_frame.schema.items():
            if prefix == "profile_id" or not name.startswith(f"{prefix}:"):
                continue
            value = name[len(prefix) + 1 :]
            column = pl.col(prefix)
            if isinstance(dtype, pl.List):
                held = column.list.contains(value)
            elif isinstance(dtype, pl.Enum):  # compared as codes (a value it cannot hold is held by no one)
                held = column == value
            else:
                held = column.cast(pl.String) == value
            found.append(held.fill_null(False))
        flags.append((pl.any_horizontal(found) if found else pl.lit(False)).alias(tag_column(name)))
    return tag_frame.select("profile_id", *flags)


def _columns_read(compiled: CompiledSegment) -> set[str]:
    specs = {c for s in compiled.event_specs for c in spec_columns_read(s)}
    consented = {"profile_id"} if compiled.consents else set()  # consents are looked up by id
    return set(compiled.attributes) | specs | {tag_column(t) for t in compiled.tags} | consented


def with_profile_ids(events: pl.DataFrame, profiles: pl.Series | None) -> pl.DataFrame:
    """``events`` with ``profile_id``: as read, or taken by position (``profile_row``) from ``profiles``."""
    if PROFILE_ROW not in events.columns:
        return events
    if profiles is None:
        raise ValueError("events with profile positions need the profiles they are positions in")
    ids = profiles.cast(pl.String).gather(events[PROFILE_ROW]).alias("profile_id")
    return events.with_columns(ids).drop(PROFILE_ROW)


def _stream_as(duck: Any, name: str, data: pa.Table) -> None:
    """Register one read of ``data`` as ``name`` on the DuckDB connection ``duck``: a bare Arrow C stream.

    DuckDB reads a registered Arrow table through ``pyarrow.dataset``, whose import imports
    pandas (~0.25 s a process, holding the GIL); a bare stream it reads itself. A stream is read
    once: it is registered again before each query (microseconds)."""
    duck.unregister(name)
    duck.register(name, data.__arrow_c_stream__())


def _copy_as(duck: Any, name: str, data: pa.Table) -> None:
    """``data`` as DuckDB's own table ``name`` (in memory: the connection never spills), for a
    table a query may read more than once (a stream is read once)."""
    loading = f"__loading_{name}"
    _stream_as(duck, loading, data)
    try:
        with refusing_to_spill("segment evaluation"):
            duck.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "{loading}"')
    finally:
        duck.unregister(loading)


@dataclass(frozen=True)
class _Bound:
    """A query whose parameters are read from a variable (None: it has none) that ``setup`` sets
    on the connection that runs it (a variable is a connection's own, a cursor's included)."""

    sql: str
    variable: str | None = None
    setup: str = ""


@contextmanager
def _bound(duck: Any, sql: str, params: Sequence[object]) -> Iterator[_Bound]:
    """``sql`` with its parameters read from a variable set from a one-row table of their own, not
    bound by DuckDB's Python API, which imports pandas to look at them (~0.25 s a process). The
    i-th ``?`` outside quotes reads field ``p<i>`` of the variable (a constant to DuckDB's planner:
    as fast as a literal, where a subquery a parameter cost 50 ms for 30 at 1M rows). No value
    enters the SQL text; the table is dropped after."""
    if not params:
        yield _Bound(sql)
        return
    name = f"__params_{next(_PARAMS_SEQUENCE)}"
    values = pl.DataFrame(
        [pl.Series(f"p{i}", [str(v) if _huge(v) else v], dtype=_param_type(v)) for i, v in enumerate(params)]
    )
    _copy_as(duck, name, values.to_arrow())
    fields = ", ".join(f"'p{i}': \"p{i}\"{'::HUGEINT' if _huge(v) else ''}" for i, v in enumerate(params))
    try:
        yield _Bound(
            _read_params(sql, name, len(params)), name, f'SET VARIABLE "{name}" = (SELECT {{{fields}}} FROM "{name}")'
        )
    finally:
        duck.execute(f'DROP TABLE IF EXISTS "{name}"')


_PARAMS_SEQUENCE = itertools.count()


def _huge(value: object) -> bool:
    """An integer past 64 bits: kept as its digits, read as a HUGEINT (as DuckDB's own binding)."""
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _param_type(value: object) -> pl.DataType:
    """The column type of one parameter (the types a compiled segment binds)."""
    if isinstance(value, bool):
        return pl.Boolean()
    if isinstance(value, int):
        return pl.String() if _huge(value) else pl.Int64()
    if isinstance(value, float):
        return pl.Float64()
    if isinstance(value, str):
        return pl.String()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return pl.List(pl.String())
    raise TypeError(f"a segment parameter of type {type(value).__name__} is not supported")


def _read_params(sql: str, variable: str, count: int) -> str:
    """``sql`` with its i-th ``?`` outside quoted names and strings replaced by a read of field
    ``p<i>`` of ``variable``; there must be ``count`` of them."""
    out: list[str] = []
    quote: str | None = None
    found = 0
    for char in sql:
        if quote is not None:  # a doubled quote closes and opens again: the same
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append(f"(getvariable('{variable}').p{found})")
            found += 1
            continue
        out.append(char)
    if found != count:
        raise ValueError(f"the query has {found} parameters, {count} given")
    return "".join(out)


def warm_up() -> None:
    """Do once what a process's first segment query does first (a connection, a stream, a
    parameter table, a query), so that a refresh does it on a thread while the events are read
    rather than in :class:`SegmentEngine` after them."""
    duck = memory_only_connection()
    try:
        _stream_as(duck, "warm_up", pl.DataFrame({"x": [0]}).to_arrow())
        with _bound(duck, "SELECT x FROM warm_up WHERE x < ?", [1]) as bound:
            duck.execute(bound.setup)
            duck.execute(bound.sql).to_arrow_table()
    finally:
        duck.close()


def _balanced(items: list[tuple[str, CompiledSegment]], shares: int) -> list[list[tuple[str, CompiledSegment]]]:
    """``items`` cut into ``shares`` parts of about the same cost (the length of their conditions), in order."""
    parts: list[list[tuple[str, CompiledSegment]]] = [[] for _ in range(max(1, shares))]
    load = [0] * len(parts)
    for item in sorted(items, key=lambda i: -len(i[1].condition)):
        lightest = load.index(min(load))
        parts[lightest].append(item)
        load[lightest] += len(item[1].condition)
    order = {name: i for i, (name, _) in enumerate(items)}
    return [sorted(part, key=lambda i: order[i[0]]) for part in parts if part]


def _members_of_bits(positions: np.ndarray, word: pl.Series, width: int) -> list[pl.Series]:
    """Per bit ``0..width-1`` of ``word``, the sorted ``positions`` (uint32) of the rows that have it set
    (two compiled passes over the rows: ``_member_bits.pyx``)."""
    words = word.cast(pl.Int64).to_numpy()
    counts = np.zeros(width, dtype=np.int64)
    members = np.empty(count_bits(words, counts), dtype=np.uint32)
    ends = np.cumsum(counts)
    fill_bits(positions, words, ends - counts, members)
    return [
        pl.Series(POSITION, members[start:end]).sort()  # already in order, as DuckDB scanned the rows: cheap
        for start, end in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)
    ]


def _bits_query(part: Sequence[tuple[str, CompiledSegment]]) -> tuple[str, list[object]]:
    """The query answering ``part``'s segments: each row's position and a bit per segment it is in."""
    segments = [c for _, c in part]
    words = [segments[i : i + SEGMENTS_PER_WORD] for i in range(0, len(segments), SEGMENTS_PER_WORD)]
    columns = ", ".join(
        "("
        + " + ".join(f"(CASE WHEN {c.condition} THEN {1 << j} ELSE 0 END)::BIGINT" for j, c in enumerate(word))
        + f") AS w{k}"
        for k, word in enumerate(words)
    )
    return f"SELECT a.{POSITION}, {columns} FROM base a", [p for c in segments for p in c.params]


class SegmentEngine:
    """Holds one snapshot (attributes, tags, events, consents) and evaluates segments over it."""

    def __init__(
        self,
        attributes: pl.DataFrame,
        events: pl.DataFrame | Callable[[], pl.DataFrame],
        tags: pl.DataFrame,
        *,
        as_of: datetime,
        consents: pl.DataFrame | None = None,
        purposes: Collection[str] | None = None,
        config: TagsConfig | None = None,
        tag_frame: pl.DataFrame | None = None,
        event_profiles: pl.Series | None = None,
    ) -> None:
        self.as_of = as_of
        self.attributes = attributes
        # The events, or how to read them: only needed for event measures not computed with the attributes.
        self._events = events
        # Events read with ``positions_of`` carry positions in these ids (``profile_row``).
        self.event_profiles = event_profiles
        self.config = config or TagsConfig()
        self.purposes = purposes
        self.columns = column_kinds([(n, str(t)) for n, t in attributes.schema.items()])
        self.specs: dict[str, EventSpec] = {}
        self.analytics = memory_only_connection()  # no file access from SQL, no spilling to temporary files
        self.tags = tags.select("profile_id", "tag")
        # Tags held as columns (classifier output, one row per profile): flags are read from them directly.
        self.tag_frame = tag_frame if tag_frame is not None else attributes.select("profile_id")
        self.tag_columns: set[str] = set()
        self._shown: dict[str, pa.Table] = {}  # table name -> its Arrow data (see ``_show``)
        self._copied: set[str] = set()  # the shown tables copied into DuckDB as they are now
        self._show("consents", (consents if consents is not None else pl.DataFrame(schema=CONSENTS_SCHEMA)).to_arrow())
        self._members = pl.DataFrame(schema=MEMBERS_SCHEMA)
        self._positions: dict[str, pl.Series] = {}  # per segment evaluated, its members' rows in ``base``
        self._show("segmembers", self._members.to_arrow())
        # Event-history columns computed with the attributes: a profile without events did it 0 times.
        self.base = attributes.with_columns(pl.col(c).fill_null(0) for c in attributes.columns if c.startswith("__ev_"))
        self._stale = True
        self._registered: set[str] = set()

    def events(self) -> pl.DataFrame:
        """The snapshot's events (read once, the first time they are needed)."""
        if callable(self._events):
            self._events = self._events()
        return self._events

    def _register_base(self, compiled: Iterable[CompiledSegment] | None = None) -> None:
        """Show DuckDB the columns of ``base`` these segments read (all without ``compiled``).

        Converting every column of a million-row ``base`` to Arrow costs more
        than the queries themselves; the registered set only grows.
        """
        needed = (
            set(self.base.columns)
            if compiled is None
            else {"profile_id"} | {c for s in compiled for c in _columns_read(s)}
        )
        if self._stale or not needed <= self._registered:
            self._registered = needed if self._stale else needed | self._registered
            shown = self.base.select(sorted(self._registered)).with_row_index(POSITION)
            # String views, as Polars holds them: no copy into Arrow's offsets layout (DuckDB reads them).
            self._show("base", shown.to_arrow(compat_level=pl.CompatLevel.newest()))
            self._stale = False

    def compile(
        self,
        segment: Segment,
        *,
        segments: Collection[str] | None = None,
        inline: Mapping[str, CompiledSegment] | None = None,
    ) -> CompiledSegment:
        return compile_segment(segment, self.columns, purposes=self.purposes, segments=segments, inline=inline)

    def prepare(self, compiled: Iterable[CompiledSegment]) -> None:
        """Add the event aggregates and tag columns the compiled segments need (once for all of them)."""
        compiled = list(compiled)
        missing = {
            s.key: s
            for s in merge_specs(s for c in compiled for s in c.event_specs)
            if s.key not in self.specs or (s.total and not self.specs[s.key].total)
        }
        # Specs computed with the attributes (one pass over the events) are already columns of base
        # (the total only where a definition read it then).
        present = set(self.base.columns)
        computed = {k: s for k, s in missing.items() if present.issuperset(spec_columns_read(s))}
        self.specs.update(computed)
        missing = {k: s for k, s in missing.items() if k not in computed}
        tags = {t for c in compiled for t in c.tags if tag_column(t) not in self.tag_columns}
        if not missing and not tags:
            return
        if missing:
            aggregates = event_aggregates(
                with_profile_ids(self.events(), self.event_profiles),
                list(missing.values()),
                as_of=self.as_of,
                config=self.config,
            )
            columns = [c for c in aggregates.columns if c != "profile_id" and c not in present]
            aggregates = aggregates.select("profile_id", *columns)  # a count computed already is kept
            self.base = self.base.join(aggregates, on="profile_id", how="left").with_columns(
                pl.col(c).fill_null(0) for c in columns
            )
            self.specs.update(missing)
        if tags:
            flags = column_flags(self.tag_frame, tags)
            rows = tag_flags(self.tags, tags)  # tags held as rows (manual, rule, plugin tags): usually few
            if rows.height:
                names = [tag_column(t) for t in tags]
                flags = flags.join(rows, on="profile_id", how="left", suffix="__rows").select(
                    "profile_id", *[(pl.col(c) | pl.col(f"{c}__rows").fill_null(False)).alias(c) for c in names]
                )
            self.base = attach_columns(self.base, flags).with_columns(
                pl.col(tag_column(t)).fill_null(False) for t in tags
            )
            self.tag_columns.update(tag_column(t) for t in tags)
        self._stale = True

    def run(self, compiled: CompiledSegment) -> pl.Series:
        self.prepare([compiled])
        self._register_base([compiled])
        table = self._query(compiled.sql, compiled.params)
        frame = pl.from_arrow(table)  # a table, not its column: no ``pyarrow.compute`` import (attributes._series)
        assert isinstance(frame, pl.DataFrame)
        return frame.to_series(0).cast(pl.String).sort() if frame.width else pl.Series(dtype=pl.String)

    def run_many(self, compiled: Mapping[str, CompiledSegment]) -> dict[str, pl.Series]:
        """Members of several segments from one scan of ``base``: one SELECT with a boolean per segment."""
        if not compiled:
            return {}
        self.prepare(compiled.values())
        self._register_base(compiled.values())
        # Only each row's position and one BIGINT per SEGMENTS_PER_WORD segments come back, a bit per
        # segment (not a million id strings, nor a boolean column per segment: half the time at 1M rows).
        # A large base is split between as many queries as there are cores (a query runs on one).
        shares = min(QUERY_THREADS, len(compiled)) if self.base.height >= PARALLEL_MIN_ROWS else 1
        parts = _balanced(list(compiled.items()), shares)
        # Each query is given the columns of base its segments read (a stream is read whole).
        tables = self._in_parallel(
            [_bits_query(part) for part in parts],
            [{POSITION} | {c for _, segment in part for c in _columns_read(segment)} for part in parts],
        )
        ids = self.base["profile_id"].cast(pl.String)
        out: dict[str, pl.Series] = {}
        for part, table in zip(parts, tables, strict=True):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            positions = frame[POSITION].cast(pl.UInt32).to_numpy()
            for k in range(0, len(part), SEGMENTS_PER_WORD):
                names = [name for name, _ in part[k : k + SEGMENTS_PER_WORD]]
                word = frame[f"w{k // SEGMENTS_PER_WORD}"]
                for name, at in zip(names, _members_of_bits(positions, word, len(names)), strict=True):
                    self._positions[name] = at
                    out[name] = ids.gather(at).sort()
        return {name: out[name] for name in compiled}

    def add_tags(self, frame: pl.DataFrame) -> None:
        """Make more (profile_id, tag) rows visible to ``{tag: …}`` conditions."""
        self.tags = pl.concat([self.tags, frame.select("profile_id", "tag")])
        stale = [c for c in (tag_column(t) for t in frame["tag"].unique().to_list()) if c in self.tag_columns]
        if stale:
            self.base = self.base.drop(stale)
            self.tag_columns.difference_update(stale)
            self._stale = True

    def remember(self, name: str, members: pl.Series) -> None:
        """Make a segment's members (profile ids) visible to ``{segment: name}`` conditions."""
        rows = self.base.select("profile_id").with_row_index(POSITION)
        found = rows.filter(pl.col("profile_id").cast(pl.String).is_in(members.cast(pl.String).implode()))
        self._remember_rows(name, found[POSITION])

    def _remember_rows(self, name: str, rows: pl.Series) -> None:
        """The same, the members given by their row in ``base``."""
        frame = pl.DataFrame({POSITION: rows.cast(pl.UInt32)}).select(pl.lit(name).alias("segment"), POSITION)
        self._members = pl.concat([self._members.filter(pl.col("segment") != name), frame])
        self._show("segmembers", self._members.to_arrow())

    def evaluate(self, segments: Sequence[Segment]) -> dict[str, pl.Series]:
        """Members of every segment, referenced segments first; shared event aggregates computed once."""
        ordered = order_segments(segments)
        names = {s.name for s in ordered}
        # In dependency order, each referenced segment's condition repeated where it is referenced:
        # every segment is then answered by the first scan of ``base`` (a second scan, for the
        # segments that reference others, cost ~50 ms at 1M profiles: docs/benchmarks.md,
        # Segments, seventeenth session).
        compiled: dict[str, CompiledSegment] = {}
        for segment in ordered:
            compiled[segment.name] = self.compile(segment, segments=names, inline=compiled)
        self.prepare(compiled.values())
        # Referenced segments' members are still shown to ``{segment: …}`` conditions evaluated later.
        referenced = {r for c in compiled.values() for r in c.segments | c.inlined}
        out: dict[str, pl.Series] = {}
        while len(out) < len(ordered):  # one query per level: segments whose references are all computed
            ready = {
                s.name: compiled[s.name]
                for s in ordered
                if s.name not in out and compiled[s.name].segments <= out.keys()
            }
            out.update(self.run_many(ready))
            for name in ready.keys() & referenced:
                self._remember_rows(name, self._positions[name])
        return {s.name: out[s.name] for s in ordered}

    def allowed(self, purpose: str) -> set[str]:
        """Profiles whose consent allows ``purpose`` (needs the purpose in this snapshot's consents)."""
        table = self._query("SELECT profile_id FROM consents WHERE purpose = ? AND allowed", [purpose])
        return {str(p) for p in table.column(0).to_pylist()}

    def _show(self, name: str, data: pa.Table) -> None:
        """Make ``data`` the table ``name`` of the next queries (replacing it): ``base`` as a stream
        of its Arrow data, the others copied into DuckDB when a query first names them (see the
        module's docstring)."""
        self._shown[name] = data
        if name == "base":
            _stream_as(self.analytics, name, data)
        else:
            self._copied.discard(name)

    def _query(
        self, sql: str, params: Sequence[object], connection: Any = None, columns: Collection[str] | None = None
    ) -> Any:
        """The Arrow table of one query; out of memory is :class:`ResourceExhausted`, never a spill.
        ``columns``: the only columns of ``base`` it reads (None: any)."""
        self._copy_read(sql)
        with _bound(connection or self.analytics, sql, params) as bound:
            return self._run(bound, connection, columns)

    def _run(self, bound: _Bound, connection: Any = None, columns: Collection[str] | None = None) -> Any:
        """Run a bound query on ``connection`` (None: the engine's own), ``base`` streamed to it."""
        conn = connection or self.analytics
        with refusing_to_spill("segment evaluation"):
            if "base" in self._shown:
                shown = self._shown["base"]
                _stream_as(conn, "base", shown if columns is None else shown.select(sorted(columns)))
            try:
                if bound.setup:
                    conn.execute(bound.setup)
                return conn.execute(bound.sql).to_arrow_table()
            finally:
                if bound.variable is not None:
                    conn.execute(f'RESET VARIABLE "{bound.variable}"')
                if "base" in self._shown and connection is None:  # the connection keeps a stream unread
                    _stream_as(conn, "base", self._shown["base"])

    def _copy_read(self, sql: str) -> None:
        """Copy into DuckDB each shown table other than ``base`` that ``sql`` names and that changed
        since (a query may read them more than once: a stream is read once)."""
        for name, data in self._shown.items():
            if name != "base" and name not in self._copied and re.search(rf"\b{name}\b", sql):
                _copy_as(self.analytics, name, data)
                self._copied.add(name)

    def _in_parallel(
        self, queries: Sequence[tuple[str, Sequence[object]]], columns: Sequence[Collection[str]]
    ) -> list[Any]:
        """The Arrow tables of several queries, run at once on cursors of their own.

        DuckDB answers one of these queries (a scan of a registered Arrow table into a result
        of a row per profile) on one thread whatever its settings; two at once use two cores
        (docs/benchmarks.md, Segments, fourteenth session). A cursor sees the database's tables,
        not the streams registered on the connection: each query is given its own.
        """
        if len(queries) == 1:
            return [self._query(*queries[0], columns=columns[0])]
        for sql, _ in queries:  # copied once, on the connection: cursors see its database's tables
            self._copy_read(sql)
        cursors: list[Any] = []
        with ExitStack() as stack:
            # Parameter tables made here, one after the other (not by the threads, at once).
            bound = [stack.enter_context(_bound(self.analytics, sql, params)) for sql, params in queries]
            try:
                cursors.extend(self.analytics.cursor() for _ in queries)
                with ThreadPoolExecutor(max_workers=len(queries), thread_name_prefix="cdp-segment-query") as pool:
                    running = [
                        pool.submit(self._run, query, cursor, read)
                        for query, cursor, read in zip(bound, cursors, columns, strict=True)
                    ]
                    return [future.result() for future in running]
            finally:
                for cursor in cursors:
                    cursor.close()

    def members(self, segment: Segment) -> list[str]:
        return [str(p) for p in self.evaluate([segment])[segment.name].to_list()]

    def close(self) -> None:
        self.analytics.close()
