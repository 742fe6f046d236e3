"""Computed attributes per profile, from the behavioural event stream.

Input is the policy-checked events frame (no identifiers); output is one row
per profile with recency, frequency and monetary measures over windows
(revenue converted to one reporting currency), the purchase interval, the
preferred channel, favourite store and category, browsing interests and the
latest survey answers. Classifiers (:mod:`cdp.segments.classify`) turn these
into tags; segment definitions filter on them.

Computed in memory, fast enough for millions of events: every count, time and
sum per profile comes from one compiled pass over the events
(:mod:`cdp.segments._event_pass`), batch by batch (a block of the events read at
a time, so its arrays stay in cache and no 10M-row temporary is made), each
event updating every measure of its profile's position. Labels (event name,
channel, category, type, currency) reach it as the raw codes the store hands
over and a small table per column from code to sorted label. The favourite
store and the survey answers are Polars group-bys on a thread meanwhile. Sums
are added in the events' order, as a ``numpy.bincount`` over all of them would.
The event-history measures of the segment definitions are computed in the same
pass, so segments never scan the events again. No ``pyarrow.compute`` call and
no ``pa.array`` from numpy: their first use costs ~0.4 s a process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from cdp.segments._event_pass import SPEC_ANY, accumulate, fill_codes, mark_codes, row_argmax, spread
from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec

WINDOWS = (30, 90, 365)
ORDER_EVENT = "Order Completed"
SURVEY_EVENT = "Survey Submitted"
PRODUCT_EVENTS = ("Product Viewed", "Product Added", "Product", ORDER_EVENT)
PROFILE_ROW = "profile_row"  # events read with ``positions_of``: the position of the event's profile
SURVEY_SCHEMA = pl.Struct({"nps": pl.Int64, "csat": pl.Int64, "interests": pl.List(pl.String), "sentiment": pl.String})


def currency_rates(config: TagsConfig) -> dict[str, float]:
    """Upper-case currency code -> rate to the reporting currency (a currency not listed counts 1)."""
    return {code.upper(): float(rate) for code, rate in config.currency.rates.items()}


def base_revenue(events: pl.DataFrame, config: TagsConfig) -> pl.Expr:
    """Order revenue in the reporting currency (unknown currencies count at rate 1)."""
    rates = currency_rates(config)
    upper = pl.col("currency").cast(pl.String).str.to_uppercase()  # the store hands it over as Categorical
    rate = upper.replace_strict(rates, default=1.0, return_dtype=pl.Float64)
    if "currency" not in events.columns:
        rate = pl.lit(1.0)
    return pl.col("revenue").fill_null(0.0) * rate.fill_null(1.0)


DAY_US = 86_400_000_000


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


SLICE_EVENTS = 131_072  # events per call of the compiled pass: a block of the events read, its arrays in cache


class _LabelColumn:
    """One label column of the events, as the compiled pass reads it: raw codes and a table.

    The raw codes are a Categorical's or Enum's physical codes as they are (a String column is
    first cast to an Enum of its sorted labels), read batch by batch from the column's Arrow
    buffers (no copy), a null coded as one past the largest code. Which codes occur is marked
    first (:meth:`mark`, every batch); :meth:`table` then maps each raw code to the position of
    its label among the sorted labels present (-1: null). No hashing of strings, and no 10M-row
    copy: a batch's codes are a few hundred kB, written into one buffer reused for every batch.
    """

    def __init__(self, events: pl.DataFrame, column: str) -> None:
        series = events[column] if column in events.columns else None
        if series is not None and not isinstance(series.dtype, pl.Categorical | pl.Enum):
            text = series.cast(pl.String)
            series = text.cast(pl.Enum(text.drop_nulls().unique().sort()))
        self.series = series
        self.physical = None if series is None or series.null_count() == series.len() else series.to_physical()
        self.present = np.zeros(256, dtype=np.uint8)
        self.sentinel = 0  # the raw code of a null: one past the largest code (set by ``table``)
        self.labels: list[str] = []
        self._buffer = np.zeros(0, dtype=np.uint32)

    def _arrow(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(the codes, the validity bitmap (empty: no null), its first bit) of ``length`` rows from ``start``."""
        assert self.physical is not None
        part = self.physical.slice(start, length)
        if part.dtype != pl.UInt32:  # an Enum of few labels: UInt8 or UInt16 codes
            part = part.cast(pl.UInt32)
        array = part.to_arrow()  # one array: a slice across two chunks is copied into one
        validity, values = array.buffers()[0], array.buffers()[1]
        assert values is not None
        codes = np.frombuffer(values, dtype=np.uint32)[array.offset : array.offset + len(array)]
        if validity is None or array.null_count == 0:
            return codes, np.zeros(0, dtype=np.uint8), 0
        return codes, np.frombuffer(validity, dtype=np.uint8), array.offset

    def mark(self, start: int, length: int) -> None:
        """Mark the codes of ``length`` rows from ``start`` as present."""
        if self.physical is None:
            return
        codes, valid, offset = self._arrow(start, length)
        top = mark_codes(codes, valid, offset, self.present)
        if top >= self.present.size:  # a code past the marks so far: grow them, and mark again
            grown = np.zeros(max(top + 1, 2 * self.present.size), dtype=np.uint8)
            grown[: self.present.size] = self.present
            self.present = grown
            mark_codes(codes, valid, offset, self.present)

    def raw(self, start: int, length: int) -> np.ndarray:
        """The raw codes of ``length`` rows from ``start`` (after :meth:`table`; valid until the next call)."""
        if self._buffer.size < length:
            self._buffer = np.zeros(max(length, SLICE_EVENTS), dtype=np.uint32)
        out = self._buffer[:length]
        if self.physical is None:
            out[:] = self.sentinel
            return out
        codes, valid, offset = self._arrow(start, length)
        if not valid.size:
            return codes  # no null in these rows: the codes as they are
        fill_codes(codes, valid, offset, self.sentinel, out)
        return out

    def table(self) -> np.ndarray:
        """Per raw code, its label's position in :attr:`labels` (set here: the sorted labels marked)."""
        codes = np.flatnonzero(self.present)
        self.sentinel = int(codes[-1]) + 1 if codes.size else 0
        table = np.full(self.sentinel + 1, -1, dtype=np.int32)
        if self.physical is None or self.series is None or not codes.size:
            return table
        names = pl.Series(codes, dtype=self.physical.dtype).cat.to(self.series.dtype).cast(pl.String).to_list()
        order = sorted(range(len(names)), key=names.__getitem__)
        table[codes[order]] = np.arange(len(names), dtype=np.int32)
        self.labels = [names[i] for i in order]
        return table


def _slices(events: pl.DataFrame) -> list[tuple[int, int]]:
    """(start, length) of the batches the pass takes: at most SLICE_EVENTS each, within one chunk
    of the events (the blocks of the read), so each batch's columns are views, not copies."""
    out: list[tuple[int, int]] = []
    start = 0
    for length in events["occurred_at"].chunk_lengths() if events.height else []:
        out.extend((start + offset, min(SLICE_EVENTS, length - offset)) for offset in range(0, length, SLICE_EVENTS))
        start += length
    return out


def _view(series: pl.Series, start: int, length: int, dtype: type[np.generic]) -> np.ndarray:
    """``length`` values from ``start`` as a contiguous numpy array (a view when the slice is one chunk)."""
    return np.ascontiguousarray(series.slice(start, length).to_numpy(), dtype=dtype)


def _position(labels: Sequence[str], value: object) -> int:
    """The code of ``value`` among ``labels``; -2 (matches no row: codes are >= -1) when absent."""
    return labels.index(value) if isinstance(value, str) and value in labels else -2


def _by_label(table: np.ndarray, values: Sequence[Any], null: Any, dtype: type[np.generic]) -> np.ndarray:
    """Per raw code (``table``: its label position, -1 null), the value of its label (``null`` for -1)."""
    found: np.ndarray = np.array([*values, null], dtype=dtype)[table]
    return found


def _nullable(values: np.ndarray | pl.Series, valid: np.ndarray, dtype: pl.DataType | None = None) -> pl.Series:
    """``values`` where ``valid``, null elsewhere (cast to ``dtype`` when given)."""
    series = values if isinstance(values, pl.Series) else pl.Series(values)
    if dtype is not None:
        series = series.cast(dtype)
    if valid.all():
        return series
    return pl.select(pl.when(pl.lit(pl.Series(valid))).then(pl.lit(series))).to_series()


class _Grouped:
    """Reductions of event rows (``_row``: the position of their profile) into ``size`` profiles."""

    def __init__(self, size: int) -> None:
        self.size = size

    def first_value(self, frame: pl.DataFrame, name: str) -> pl.Series:
        """For ``frame`` (``_row``, ``name``, sorted by priority): each profile's first value (null if none)."""
        best = frame.group_by("_row", maintain_order=True).first()
        slots = pl.DataFrame({"_row": np.arange(self.size, dtype=np.uint32)})
        return slots.join(best, on="_row", how="left", maintain_order="left")[name]


def label_lists(held: np.ndarray, labels: Sequence[str]) -> pl.Series:
    """Per row of the (rows, labels) boolean matrix, the list of labels it holds (in ``labels`` order)."""
    columns = np.flatnonzero(held) % max(held.shape[1], 1)  # row-major: each row's labels in column order
    offsets = np.zeros(held.shape[0] + 1, dtype=np.int64)
    np.cumsum(held.sum(axis=1), out=offsets[1:])
    values = pl.Series(list(labels), dtype=pl.String).gather(columns)
    values = values.to_arrow(compat_level=pl.CompatLevel.newest())  # string views, as Polars holds them: no copy
    # Arrow arrays made by Polars: the first ``pa.array`` of a process costs ~0.4 s (pyarrow's numpy import).
    series = pl.from_arrow(pa.LargeListArray.from_arrays(pl.Series(offsets).to_arrow(), values))
    assert isinstance(series, pl.Series)
    return series if series.dtype == pl.List(pl.String) else series.cast(pl.List(pl.String))


def _argmax(counts: np.ndarray, keys: Sequence[str], name: str) -> pl.Series:
    """The key whose count is largest (null when all are 0; ties: the first key in sorted order).

    ``counts``: (profiles, at least ``len(keys)``) int32, C-contiguous; its first ``len(keys)`` columns count the keys.
    """
    if not keys:
        return pl.Series(name, [None] * counts.shape[0], dtype=pl.String)
    best, largest = np.empty(counts.shape[0], dtype=np.int64), np.empty(counts.shape[0], dtype=np.int64)
    row_argmax(np.ascontiguousarray(counts, dtype=np.int32), len(keys), best, largest)
    picked = pl.Series(name, list(keys), dtype=pl.String).gather(best)
    return _nullable(picked, largest > 0).alias(name)


def _survey(events: pl.DataFrame, groups: _Grouped) -> pl.DataFrame | None:
    """The latest survey answers per profile, aligned with the profile positions (None without surveys)."""
    if "properties" not in events.columns:
        return None
    answers = events.filter(pl.col("event_name") == SURVEY_EVENT).sort("occurred_at")
    props = pl.col("properties")
    if answers.schema["properties"] == pl.String:
        props = props.str.json_decode(SURVEY_SCHEMA)
    fields = answers.select("_row", props.alias("p")).unnest("p")
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
    slots = pl.DataFrame({"_row": np.arange(groups.size, dtype=np.uint32)})
    return slots.join(latest, on="_row", how="left", maintain_order="left").drop("_row")


def _positions(events: pl.DataFrame, profiles: pl.Series | None) -> tuple[pl.DataFrame, pl.Series]:
    """(events with ``_row``, the position of their profile in the keys; the keys).

    The keys are ``profiles`` when given (events of other profiles are
    dropped), else the sorted distinct profile ids of the events. Events read with
    ``positions_of=profiles`` (``profile_row``) carry their positions already.
    """
    if PROFILE_ROW in events.columns:
        if profiles is None:
            raise ValueError("events with profile positions need the profiles they are positions in")
        return events.rename({PROFILE_ROW: "_row"}), profiles.rename("profile_id")
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
    coded = events.with_columns(rows)
    return (coded.filter(pl.col("_row").is_not_null()) if rows.null_count() else coded), keys


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
    are computed in the same pass, so segments never scan the events again.

    Two cores: the counts, times and sums by the compiled pass (:mod:`cdp.segments._event_pass`,
    without the GIL), the favourite store and the survey answers (Polars) on a thread meanwhile.
    """
    now = as_of or datetime.now(UTC)
    options = config or TagsConfig()
    # No events (none yet, or none this context may see) goes the same way: every column there,
    # null for every profile, so segment and tag rules over them still compile.
    if not events.select((pl.col("occurred_at") <= pl.lit(now)).fill_null(False).all()).item():
        events = events.filter(pl.col("occurred_at") <= pl.lit(now))  # a copy of every column: only when needed
    events, keys = _positions(events, profiles)
    groups = _Grouped(keys.len())
    return _with_counts(events, keys, groups, now, options, event_specs)


def _store_and_survey(events: pl.DataFrame, groups: _Grouped) -> tuple[pl.Series | None, pl.DataFrame | None]:
    """(each profile's favourite store, its latest survey answers), aligned with the profile positions."""
    favourite = None
    if "store_id" in events.columns:
        stores = events.select("_row", "store_id").filter(pl.col("store_id").is_not_null())
        counted = stores.group_by("_row", "store_id").len()
        ranked = counted.sort(["_row", "len", "store_id"], descending=[False, True, False])
        favourite = groups.first_value(ranked, "store_id").alias("favourite_store")
    return favourite, _survey(events, groups)


def _event_pass(
    events: pl.DataFrame, size: int, since: Callable[[int], int], options: TagsConfig, specs: Sequence[EventSpec]
) -> dict[str, Any]:
    """Every per-profile count, time and sum over the events, by the compiled pass (:mod:`._event_pass`).

    Two passes over the batches (:func:`_slices`): the label codes that occur, then the
    measures. Returns the output arrays (see ``accumulate``) and the sorted labels of the event
    names, channels and categories.
    """
    columns = {c: _LabelColumn(events, c) for c in ("event_name", "channel", "category", "event_type", "currency")}
    batches = _slices(events)
    for start, length in batches:
        for column in columns.values():
            column.mark(start, length)
    tables = {c: column.table() for c, column in columns.items()}
    names, channels, kinds = (columns[c].labels for c in ("event_name", "channel", "category"))
    rates = currency_rates(options)
    # Per raw code: counted (a type, not ``identify``; a null type is not), the currency's rate (unknown or null: 1).
    counted_type = _by_label(
        tables["event_type"], [t != "identify" for t in columns["event_type"].labels], False, np.uint8
    )
    currencies = columns["currency"].labels
    rate_of = _by_label(tables["currency"], [rates.get(c.upper(), 1.0) for c in currencies], 1.0, np.float64)
    order = _position(names, ORDER_EVENT)
    # Per event name (slot 0: null): a product event (browsing), an event whose amount is needed.
    product_name = np.zeros(len(names) + 1, dtype=np.uint8)
    product_name[[_position(names, n) + 1 for n in PRODUCT_EVENTS if n in names]] = 1
    spec_name = [_position(names, spec.event) for spec in specs]
    amount_name = np.zeros(len(names) + 1, dtype=np.uint8)
    amount_name[[code + 1 for code in [order, *spec_name] if code >= 0]] = 1
    by_name = [[k for k, code in enumerate(spec_name) if code == c] for c in range(-1, len(names))]
    spec_start = np.zeros(len(names) + 2, dtype=np.int32)
    spec_start[1:] = np.cumsum([len(b) for b in by_name])
    never, forever = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    times = np.empty((4, size), dtype=np.int64)  # first and last event (from ``hot``), first and last order
    times[2], times[3] = never, forever
    hot = np.zeros((size, 8), dtype=np.int64)  # events, counted, channels, first, last, channel bits 0-63
    hot[:, 3], hot[:, 4] = never, forever
    out: dict[str, Any] = {
        "hot": hot,
        # events, counted events, distinct channels (these three from ``hot``), orders, orders 90-180 days ago,
        # orders within 30/90/365 days
        "counts": np.zeros((8, size), dtype=np.int64),
        "times": times,
        "sums": np.zeros((4, size), dtype=np.float64),  # revenue: lifetime, within 30/90/365 days
        "channel_bits": np.zeros((size, max(1, (len(channels) - 1) // 64)), dtype=np.uint64),  # channels 64 and up
        "browsing": np.zeros((size, max(1, len(kinds))), dtype=np.int32),
        "order_channels": np.zeros((size, max(1, len(channels))), dtype=np.int32),
        "spec_count": np.zeros((len(specs), size), dtype=np.int64),
        "spec_revenue": np.zeros((len(specs), size), dtype=np.float64),
    }
    fixed = (
        product_name,
        amount_name,
        order,
        since(options.interests.window_days),
        np.array([since(30), since(90), since(365), since(180)], dtype=np.int64),
        spec_start,
        np.array([k for b in by_name for k in b] or [0], dtype=np.int32),
        np.array([since(s.start_days) for s in specs], dtype=np.int64),
        np.array([since(s.end_days) if s.end_days else never for s in specs], dtype=np.int64),
        np.array([s.revenue_over is not None for s in specs], dtype=np.uint8),
        np.array([s.revenue_over or 0.0 for s in specs], dtype=np.float64),
        np.array([SPEC_ANY if s.channel is None else _position(channels, s.channel) for s in specs], dtype=np.int32),
        np.array([SPEC_ANY if s.category is None else _position(kinds, s.category) for s in specs], dtype=np.int32),
        *out.values(),
    )
    rows, stamps, revenue = events["_row"], events["occurred_at"].to_physical(), events["revenue"]
    for start, length in batches:
        raw = {c: column.raw(start, length) for c, column in columns.items()}
        accumulate(
            _view(rows, start, length, np.uint32),
            _view(stamps, start, length, np.int64),
            raw["event_name"],
            tables["event_name"],
            raw["channel"],
            tables["channel"],
            raw["category"],
            tables["category"],
            raw["event_type"],
            counted_type,
            raw["currency"],
            rate_of,
            _view(revenue.slice(start, length).fill_null(0.0), 0, length, np.float64),
            *fixed,
        )
    spread(hot, out["counts"], out["times"])
    return {**out, "channels": channels, "kinds": kinds}


def _with_counts(
    events: pl.DataFrame,
    keys: pl.Series,
    groups: _Grouped,
    now: datetime,
    options: TagsConfig,
    event_specs: Sequence[EventSpec],
) -> pl.DataFrame:
    """The attributes frame (see :func:`compute_attributes`)."""
    ts_type = events.schema["occurred_at"]
    unit = getattr(ts_type, "time_unit", "us") or "us"
    per_day = {"ns": 86_400_000_000_000, "us": DAY_US, "ms": 86_400_000}[unit]
    moment = pl.select(pl.lit(now).cast(ts_type).to_physical()).item()

    def since(days: int) -> int:  # "at most ``days`` old" is ``stamp >= since(days)`` (exact, in the column's unit)
        return int(moment - days * per_day)

    specs = list({spec.key: spec for spec in event_specs}.values())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-attributes") as pool:
        # The favourite store and the survey answers are Polars group-bys, on a thread: they use
        # the other core while the compiled pass (which lets go of the GIL) runs on this one.
        polars_part = pool.submit(_store_and_survey, events, groups)
        found = _event_pass(events, groups.size, since, options, specs)
        counts, times, sums = found["counts"], found["times"], found["sums"]
        seen, order_count = counts[0], counts[3]
        out: dict[str, pl.Series | np.ndarray | None] = {
            "profile_id": keys,
            "first_seen": _nullable(times[0], seen > 0, ts_type),
            "last_seen": _nullable(times[1], seen > 0, ts_type),
            "last_order_at": _nullable(times[3], order_count > 0, ts_type),
            "first_order_at": _nullable(times[2], order_count > 0, ts_type),
            "order_count": order_count,
            "revenue_lifetime": sums[0],
            "event_count": counts[1],
            "orders_prev_90d": counts[4],
        }
        for j, days in enumerate(WINDOWS):
            out[f"orders_{days}d"] = counts[5 + j]
            out[f"revenue_{days}d"] = sums[1 + j]
        for j, spec in enumerate(specs):
            out[spec.count_column] = found["spec_count"][j]
            out[spec.revenue_column] = found["spec_revenue"][j]
        channels, kinds, browsing = found["channels"], found["kinds"], found["browsing"][:, : len(found["kinds"])]
        browsed = np.asarray(browsing.any(axis=0))
        categories = [k for k, used in zip(kinds, browsed.tolist(), strict=True) if used]
        if not browsed.all():
            browsing = browsing[:, browsed]
        wanted = [(i, c) for i, c in enumerate(categories) if c in options.interests.categories]
        liked = browsing >= options.interests.min_browsing_events
        out["preferred_channel"] = _argmax(found["order_channels"][:, : len(channels)], channels, "preferred_channel")
        out["favourite_category"] = _argmax(browsing, categories, "favourite_category")
        out["browsed_categories"] = label_lists(liked[:, [i for i, _ in wanted]], [c for _, c in wanted])
        out["channel_count"] = counts[2]
        frame = pl.DataFrame(out)
        favourite, survey = polars_part.result()
        if favourite is not None:
            frame = frame.with_columns(favourite)
        if survey is not None:
            frame = pl.concat([frame, survey], how="horizontal")
        if not (seen > 0).all():  # profiles without events: every computed column is null, as after a left join
            active = pl.lit(pl.Series(seen > 0))
            frame = frame.with_columns(pl.when(active).then(pl.col(c)).alias(c) for c in frame.columns[1:])
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
