"""Computed attributes per profile, from the behavioural event stream.

Input is the policy-checked events frame (no identifiers); output is one row
per profile with recency, frequency and monetary measures over windows
(revenue converted to one reporting currency), the purchase interval, the
preferred channel, favourite store and category, browsing interests and the
latest survey answers. Classifiers (:mod:`cdp.segments.classify`) turn these
into tags; segment definitions filter on them.

Computed in memory, fast enough for millions of events: every count, time and
sum per profile comes from one compiled pass over the events, batch by batch
(:mod:`cdp.segments.measures`). A refresh has the store hand it the events as
they are decoded (``CustomerStore.scan_events``: :func:`measure_events`), so
no frame of every event is assembled; an events frame goes the same way, cut
into batches (:func:`compute_attributes`). The event-history measures of the
segment definitions are computed in the same pass, so segments never scan the
events again. No ``pyarrow.compute`` call and no ``pa.array`` from numpy: their
first use costs ~0.4 s a process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from cdp.access._event_scan import frame_batches
from cdp.segments._event_pass import column_totals, list_items, list_offsets, row_argmax
from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec
from cdp.segments.measures import (
    DAY_US,
    ORDER_EVENT,
    PRODUCT_EVENTS,
    SURVEY_EVENT,
    EventMeasures,
    Measures,
    currency_rates,
)

__all__ = ["DAY_US", "ORDER_EVENT", "PRODUCT_EVENTS", "SURVEY_EVENT", "WINDOWS", "compute_attributes", "measure_events"]

WINDOWS = (30, 90, 365)
PROFILE_ROW = "profile_row"  # events read with ``positions_of``: the position of the event's profile
SURVEY_SCHEMA = pl.Struct({"nps": pl.Int64, "csat": pl.Int64, "interests": pl.List(pl.String), "sentiment": pl.String})


def base_revenue(events: pl.DataFrame, config: TagsConfig) -> pl.Expr:
    """Order revenue in the reporting currency (unknown currencies count at rate 1)."""
    rates = currency_rates(config)
    upper = pl.col("currency").cast(pl.String).str.to_uppercase()  # the store hands it over as Categorical
    rate = upper.replace_strict(rates, default=1.0, return_dtype=pl.Float64)
    if "currency" not in events.columns:
        rate = pl.lit(1.0)
    return pl.col("revenue").fill_null(0.0) * rate.fill_null(1.0)


def spec_columns(
    events: pl.DataFrame, specs: Sequence[EventSpec], *, as_of: datetime, config: TagsConfig
) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """(helper columns to add first, per-row count and amount columns) for each event-history spec.

    The helpers (event name code, age, amount in the reporting currency) are
    computed once, so each spec costs only a few comparisons per row.
    """
    names = sorted({s.event for s in specs})
    code = {name: i for i, name in enumerate(names)}
    now = pl.lit(as_of).cast(pl.Datetime("us", "UTC"))
    helpers = [
        pl.col("event_name").replace_strict(code, default=-1, return_dtype=pl.Int16).alias("_spec_name"),
        (now - pl.col("occurred_at")).dt.total_microseconds().alias("_spec_age"),
        base_revenue(events, config).alias("_spec_amount"),
    ]
    age, amount = pl.col("_spec_age"), pl.col("_spec_amount")
    out: list[pl.Expr] = []
    for spec in specs:
        condition = (pl.col("_spec_name") == code[spec.event]) & (age >= 0) & (age <= spec.start_days * DAY_US)
        if spec.end_days:
            condition &= age > spec.end_days * DAY_US
        if spec.revenue_over is not None:
            condition &= amount > spec.revenue_over
        for key, value in (("channel", spec.channel), ("category", spec.category)):
            if value is not None:
                condition &= pl.col(key) == value if key in events.columns else pl.lit(False)
        out.append(condition.cast(pl.Int32).alias(spec.count_column))
        out.append(pl.when(condition).then(amount).otherwise(0.0).alias(spec.revenue_column))
    return (helpers if specs else []), out


def _nullable(series: pl.Series, valid: np.ndarray) -> pl.Series:
    """``series`` where ``valid``, null elsewhere."""
    if valid.all():
        return series
    return pl.select(pl.when(pl.lit(pl.Series(valid))).then(pl.lit(series))).to_series()


def label_lists(held: np.ndarray, labels: Sequence[str], *, valid: np.ndarray | None = None) -> pl.Series:
    """Per row of the (rows, labels) boolean matrix, the list of labels it holds (in ``labels``
    order); null where ``valid`` is False."""
    every = np.arange(held.shape[1], dtype=np.int64)
    return counted_lists(np.ascontiguousarray(held).view(np.uint8), every, 1, labels, valid=valid)


def counted_lists(
    counts: np.ndarray, columns: np.ndarray, floor: int, labels: Sequence[str], *, valid: np.ndarray | None = None
) -> pl.Series:
    """Per row of ``counts`` (rows, columns: int32 or uint8), the list of ``labels[j]`` whose column
    ``columns[j]`` counts at least ``floor`` (in ``labels`` order); null where ``valid`` is False.

    Two compiled row-major passes (how long each list is, then its items): no boolean
    matrix, no strided pass a column (docs/benchmarks.md, Segments, fourteenth session).
    """
    offsets = np.empty(counts.shape[0] + 1, dtype=np.int64)
    items = np.empty(list_offsets(counts, columns, floor, offsets), dtype=np.int32)
    list_items(counts, columns, floor, items)
    values = pl.Series(list(labels), dtype=pl.String).gather(items)
    values = values.to_arrow(compat_level=pl.CompatLevel.newest())  # string views, as Polars holds them: no copy
    # Arrow arrays from buffers: the first ``pa.array`` of a process costs ~0.4 s (pyarrow's numpy import),
    # ``pa.array`` of a numpy array imports pandas (0.2 s) and ``LargeListArray.from_arrays`` with a mask
    # imports ``pyarrow.compute`` (0.06-0.1 s), each the first time.
    lists = pa.Array.from_buffers(
        pa.large_list(values.type),
        counts.shape[0],
        [None if valid is None else _bits(valid), pa.py_buffer(offsets)],
        children=[values],
    )
    series = _series(lists)
    return series if series.dtype == pl.List(pl.String) else series.cast(pl.List(pl.String))


def _argmax(counts: np.ndarray, keys: Sequence[tuple[str, int]], name: str) -> pl.Series:
    """Per row, the key whose column counts most (null when all are 0; ties: the first key).

    ``counts``: (profiles, columns) int32; ``keys``: (label, its column), in the order ties go by.
    """
    if not keys:
        return pl.Series(name, [None] * counts.shape[0], dtype=pl.String)
    best, largest = np.empty(counts.shape[0], dtype=np.int64), np.empty(counts.shape[0], dtype=np.int64)
    order = np.array([column for _, column in keys], dtype=np.int64)
    row_argmax(np.ascontiguousarray(counts, dtype=np.int32), order, best, largest)
    picked = pl.Series(name, [label for label, _ in keys], dtype=pl.String).gather(best)
    return _nullable(picked, largest > 0).alias(name)


def _survey(answers: pl.DataFrame, size: int) -> pl.DataFrame | None:
    """The latest survey answers per profile (``answers``: _row, occurred_at, properties), aligned
    with the profile positions (None when the answers hold none of the survey fields)."""
    props = pl.col("properties")
    if answers.schema["properties"] == pl.String:
        props = props.str.json_decode(SURVEY_SCHEMA)
    fields = answers.sort("occurred_at", maintain_order=True).select("_row", props.alias("p")).unnest("p")
    wanted = {"nps", "csat", "interests", "sentiment"}
    if not wanted <= set(fields.columns):
        return None
    latest = fields.group_by("_row").agg(
        pl.col("nps").drop_nulls().last().alias("nps_latest"),
        pl.col("csat").drop_nulls().last().alias("csat_latest"),
        pl.col("sentiment").drop_nulls().last().alias("sentiment_latest"),
        pl.col("interests").explode().drop_nulls().unique().sort().alias("survey_interests"),
        pl.len().alias("survey_count"),
    )
    # Aligned by one gather, not a join of a million slots: each profile's row of ``latest``, or the
    # all-null row appended after them for a profile without answers.
    values = latest.drop("_row")
    values = pl.concat([values, values.clear(1)])
    at = np.full(size, latest.height, dtype=np.uint32)
    at[latest["_row"].to_numpy()] = np.arange(latest.height, dtype=np.uint32)
    return values.gather(at)


def _positions(events: pl.DataFrame, profiles: pl.Series | None) -> tuple[pl.Series, pl.Series]:
    """(per event, the position of its profile in the keys, null when not among them; the keys).

    The keys are ``profiles`` when given, else the sorted distinct profile ids of the
    events. Events read with ``positions_of=profiles`` (``profile_row``) carry their
    positions already.
    """
    if PROFILE_ROW in events.columns:
        if profiles is None:
            raise ValueError("events with profile positions need the profiles they are positions in")
        return events[PROFILE_ROW], profiles.rename("profile_id")
    ids = events.schema["profile_id"]
    keys = (
        profiles if profiles is not None else events["profile_id"].cast(pl.String).drop_nulls().unique().sort()
    ).rename("profile_id")
    index = keys.cast(pl.String).to_frame().with_row_index("_row")
    if isinstance(ids, pl.Enum) and ids.categories.len() < events.height:
        # As the store hands them over: the position of each category (a look-up of the
        # profile ids), then of each event by its category code; no hashing of 10M strings.
        categories = ids.categories
        if categories.len() == keys.len() and categories.equals(keys.cast(pl.String), check_names=False):
            # The profile frame is the active profiles in id order, as the Enum: codes are positions.
            rows = events["profile_id"].to_physical().cast(pl.UInt32).alias("_row")
        else:
            position = categories.to_frame("profile_id").join(index, on="profile_id", how="left", maintain_order="left")
            if position.height != categories.len():
                raise ValueError("profile ids must be unique")
            rows = position["_row"].gather(events["profile_id"].to_physical())
    else:
        rows = events.select(pl.col("profile_id").cast(pl.String)).join(
            index, on="profile_id", how="left", maintain_order="left"
        )["_row"]
    if rows.len() != events.height:
        raise ValueError("profile ids must be unique")
    return rows, keys


def compute_attributes(
    events: pl.DataFrame,
    *,
    as_of: datetime | None = None,
    config: TagsConfig | None = None,
    event_specs: Sequence[EventSpec] = (),
    profiles: pl.Series | None = None,
) -> pl.DataFrame:
    """One row per profile: first/last seen, orders and revenue per window, AOV, interval, channel, interests.

    Without ``profiles``: one row per profile with events up to ``as_of``,
    sorted by id. With ``profiles`` (unique ids): one row per given profile,
    in that order, all computed columns null for a profile without events;
    so ``pl.concat([frame, result.drop("profile_id")], how="horizontal")`` is
    the left join of the profile frame with the attributes, without a join.
    The event-history measures of the segment definitions (``event_specs``)
    are computed in the same pass, so segments never scan the events again;
    they are counts and amounts, 0 (not null) for a profile without events,
    as the segment engine reads them.
    """
    now = as_of or datetime.now(UTC)
    options = config or TagsConfig()
    rows, keys = _positions(events, profiles)
    if profiles is None and events.height:  # only profiles with an event up to ``as_of``
        rows = pl.select(pl.when(pl.lit(events["occurred_at"] <= now)).then(pl.lit(rows))).to_series()
        listed = rows.drop_nulls().unique().sort()
        if listed.len() < keys.len():
            renumber = pl.repeat(None, keys.len(), dtype=pl.UInt32, eager=True).scatter(
                listed, pl.int_range(listed.len(), dtype=pl.UInt32, eager=True)
            )
            rows, keys = renumber.gather(rows), keys.gather(listed)
    measures = EventMeasures(
        keys.len(),
        as_of=now,
        config=options,
        specs=event_specs,
        time_type=events.schema["occurred_at"],
        columns=events.columns,
    )
    for batch in frame_batches(events, rows):
        measures.add(batch)
    return attributes_frame(measures.finish(), keys, as_of=now, config=options)


def measure_events(
    scan: Callable[[EventMeasures], object],
    profiles: pl.Series,
    *,
    as_of: datetime,
    config: TagsConfig,
    event_specs: Sequence[EventSpec] = (),
    scanned: Callable[[], object] | None = None,
) -> pl.DataFrame:
    """:func:`compute_attributes` of the events a scan hands over (``scan(sink)``: for instance
    ``lambda sink: store.scan_events(ctx, sink, positions_of=profiles)``), one row per profile.
    ``scanned`` is called once the scan is done, before the frame is built."""
    measures = EventMeasures(profiles.len(), as_of=as_of, config=config, specs=event_specs)
    scan(measures)
    if scanned is not None:
        scanned()
    return attributes_frame(measures.finish(), profiles.rename("profile_id"), as_of=as_of, config=config)


def _series(array: pa.Array) -> pl.Series:
    """An Arrow array as a Series, without a copy. Through a one-column record batch: Polars'
    ``from_arrow`` of a bare array imports ``pyarrow.compute`` first (0.06-0.1 s once a process, on
    the refresh's main thread: docs/benchmarks.md, Segments, sixteenth session); of a batch it does not."""
    frame = pl.from_arrow(pa.RecordBatch.from_arrays([array], names=["_"]), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame.to_series()


def _bits(valid: np.ndarray) -> pa.Buffer:
    """An Arrow validity bitmap of a boolean array."""
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _column(values: np.ndarray, valid: pa.Buffer | None, kind: pa.DataType) -> pl.Series:
    """A contiguous numpy array as a column, null where ``valid`` has no bit, without a copy (the
    series holds the array): a null per profile without events costs a bitmap, not a column."""
    array = np.ascontiguousarray(values)
    if array.dtype.itemsize * 8 != kind.bit_width:
        raise ValueError(f"a {array.dtype} array cannot be read as {kind}")
    return _series(pa.Array.from_buffers(kind, array.size, [valid, pa.py_buffer(array)], null_count=-1))


def attributes_frame(found: Measures, keys: pl.Series, *, as_of: datetime, config: TagsConfig) -> pl.DataFrame:
    """The attributes frame of the measures: one row per key, in order (see :func:`compute_attributes`).

    Every computed column but the event-history measures is null for a profile without events
    (as after a left join): the measures' arrays are wrapped with one shared validity bitmap, not copied.
    """
    now, options = as_of, config
    ts_type = found.time_type
    counts, times, sums = found.counts, found.times, found.sums
    seen, order_count = counts[0], counts[3]
    active = seen > 0
    everyone = bool(active.all())
    valid = None if everyone else _bits(active)
    ordered = _bits(order_count > 0)
    unit = getattr(ts_type, "time_unit", "us") or "us"
    stamp = pa.timestamp(unit, getattr(ts_type, "time_zone", None))

    def counted(values: np.ndarray) -> pl.Series:
        return _column(values, valid, pa.int64())

    def summed(values: np.ndarray) -> pl.Series:
        return _column(values, valid, pa.float64())

    out: dict[str, pl.Series] = {
        "profile_id": keys,
        "first_seen": _column(times[0], valid, stamp),
        "last_seen": _column(times[1], valid, stamp),
        "last_order_at": _column(times[3], ordered, stamp),
        "first_order_at": _column(times[2], ordered, stamp),
        "order_count": counted(order_count),
        "revenue_lifetime": summed(sums[0]),
        "event_count": counted(counts[1]),
        "orders_prev_90d": counted(counts[4]),
    }
    for j, days in enumerate(WINDOWS):
        out[f"orders_{days}d"] = counted(counts[5 + j])
        out[f"revenue_{days}d"] = summed(sums[1 + j])
    spec_totals = iter(found.spec_revenue)
    for j, spec in enumerate(found.specs):  # 0 without events: the engine would fill the nulls, a copy each
        out[spec.count_column] = _column(found.spec_count[j], None, pa.int32())
        if spec.total:  # computed only where a definition reads it
            out[spec.revenue_column] = _column(next(spec_totals), None, pa.float64())
    browsing = found.browsing
    totals = np.empty(browsing.shape[1], dtype=np.int64)
    column_totals(browsing, totals)
    categories = [(kind, column) for kind, column in found.kinds if totals[column]]
    wanted = [(kind, column) for kind, column in categories if kind in options.interests.categories]
    # Null without any event: a profile without events counts nothing, so these pick nothing.
    out["preferred_channel"] = _argmax(found.order_channels, found.channels, "preferred_channel")
    out["favourite_category"] = _argmax(browsing, categories, "favourite_category")
    out["browsed_categories"] = counted_lists(
        browsing,
        np.array([column for _, column in wanted], dtype=np.int64),
        options.interests.min_browsing_events,
        [kind for kind, _ in wanted],
        valid=None if everyone else active,
    )
    out["channel_count"] = counted(counts[2])
    frame = pl.DataFrame({name: series.alias(name) for name, series in out.items()})
    survey = _survey(found.survey, keys.len()) if found.survey is not None else None
    favourite = found.favourite_store
    if favourite is not None:  # null for a profile without a store visit
        frame = frame.with_columns(favourite)
    if survey is not None:  # null for a profile without answers
        frame = pl.concat([frame, survey], how="horizontal")
    return frame.with_columns(
        pl.when(pl.col("order_count") > 0)
        .then(pl.col("revenue_lifetime") / pl.col("order_count"))
        .otherwise(None)
        .alias("average_order_value"),
        ((pl.lit(now) - pl.col("last_order_at")).dt.total_days()).alias("days_since_last_order"),
        ((pl.lit(now) - pl.col("last_seen")).dt.total_days()).alias("days_since_last_seen"),
        ((pl.lit(now) - pl.col("first_seen")).dt.total_days()).alias("days_since_first_seen"),
        pl.when(pl.col("order_count") > 1)
        .then(
            (pl.col("last_order_at") - pl.col("first_order_at")).dt.total_seconds()
            / 86400.0
            / (pl.col("order_count") - 1)
        )
        .otherwise(None)
        .alias("purchase_interval_days"),
    )
