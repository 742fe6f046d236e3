"""Computed attributes per profile, from the behavioural event stream.

Input is the policy-checked events frame (no identifiers); output is one row
per profile with recency, frequency and monetary measures over windows
(revenue converted to one reporting currency), the purchase interval, the
preferred channel, favourite store and category, browsing interests and the
latest survey answers. Classifiers (:mod:`cdp.segments.classify`) turn these
into tags; segment definitions filter on them.

Computed in memory, fast enough for millions of events: every event is mapped
once to the integer position of its profile (one hash join on the string id),
the per-row conditions are numpy masks over small integer codes (event name,
channel, category) and the raw timestamp, and each measure is a
``numpy.bincount`` over only the rows it concerns (orders are a fraction of
the events). Grouping forty sums through a string-keyed group-by cost several
seconds per ten million events; this costs a fraction of that and gives the
same values (sums of floats may differ in the last bit: the order of
addition is the events' order). Temporaries are kept small (int8 codes, no
per-row age array): on this VM, touching fresh memory costs as much as the
arithmetic.

Labels are coded from the Categorical codes the store hands over (a count of
the physical codes, no string hashing); row positions are ``intp`` once, as
``bincount`` converts any other type on every call (3x slower on uint32).
Each event-history measure reads only the rows of its event inside its widest
window, with their amounts converted once per event. No ``pyarrow.compute``
call and no ``pa.array`` from numpy: their first use costs ~0.4 s a process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from cdp.segments._forked_counts import ForkedCounts
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


def _codes_of(series: pl.Series) -> tuple[np.ndarray, list[str]]:
    """(each row's code, the label of each code) of a Categorical or Enum column: sorted labels, -1 for null.

    Only the labels present are listed. The physical codes are counted once (a
    ``bincount``, no hashing of strings) and renumbered through a small table.
    """
    physical = series.to_physical()
    kind, nulls = physical.dtype, physical.null_count()
    top = physical.max() if nulls < series.len() else None
    sentinel = int(top) + 1 if isinstance(top, int) else 0  # the slot of the nulls, after every code
    if nulls:
        physical = physical.cast(pl.Int64).fill_null(sentinel)
    wide = physical.to_numpy().astype(np.intp, copy=False)  # numpy indexes and counts intp fastest (uint32: ~3x slower)
    present = np.flatnonzero(np.bincount(wide, minlength=sentinel + 1)[:sentinel])
    names = pl.Series(present, dtype=kind).cat.to(series.dtype).cast(pl.String).to_list()
    order = sorted(range(len(names)), key=names.__getitem__)
    table = np.full(sentinel + 1, -1, dtype=_small(len(names)))
    table[present[order]] = np.arange(len(names))
    codes: np.ndarray = table[wide]
    return codes, [names[i] for i in order]


def _small(count: int) -> type[np.signedinteger[Any]]:
    """The smallest signed integer type holding -1 .. count (less memory to touch than int64)."""
    return np.int8 if count < 127 else np.int16 if count < 32_767 else np.int32


def label_codes(events: pl.DataFrame, columns: Sequence[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """:func:`_codes_of` for each of ``columns`` (a missing column: every row null).

    The store hands event labels over as Categorical (codes read directly);
    String columns are first cast to an ``Enum`` of their distinct values, all
    columns in one select each (Polars runs them in parallel).
    """
    present = [c for c in columns if c in events.columns]
    text = [c for c in present if not isinstance(events.schema[c], pl.Categorical | pl.Enum)]
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    if text:
        found = events.select(pl.col(c).cast(pl.String).drop_nulls().unique().implode() for c in text)
        labels = {c: sorted(str(v) for v in found[c][0]) for c in text}
        # An Enum of the sorted labels: its physical codes are the codes wanted (null: -1).
        codes = events.select(
            pl.col(c).cast(pl.String).cast(pl.Enum(labels[c])).to_physical().cast(pl.Int32).fill_null(-1) for c in text
        )
        out = {c: (codes[c].to_numpy().astype(_small(len(labels[c]))), labels[c]) for c in text}
    out.update({c: _codes_of(events[c]) for c in present if c not in out})
    empty: tuple[np.ndarray, list[str]] = (np.full(events.height, -1, dtype=np.int8), [])
    return {c: out.get(c, empty) for c in columns}


def _position(labels: Sequence[str], value: object) -> int:
    """The code of ``value`` among ``labels``; -2 (matches no row: codes are >= -1) when absent."""
    return labels.index(value) if isinstance(value, str) and value in labels else -2


def _rates(events: pl.DataFrame, config: TagsConfig) -> Callable[[np.ndarray], np.ndarray]:
    """For row positions, the rate of each row's currency to the reporting currency (unknown or null: 1).

    As :func:`base_revenue`, but looked up once per distinct currency label, then per row by its code.
    """
    if "currency" not in events.columns:
        return lambda at: np.ones(at.size)
    rates = currency_rates(config)

    def rate(at: np.ndarray) -> np.ndarray:
        codes, labels = label_codes(events["currency"].gather(at).to_frame(), ("currency",))["currency"]
        upper = pl.Series(labels, dtype=pl.String).str.to_uppercase()
        table = np.append(upper.replace_strict(rates, default=1.0, return_dtype=pl.Float64).to_numpy(), 1.0)
        found: np.ndarray = table[codes]  # code -1 (null) reads the last slot: rate 1
        return found

    return rate


def _nullable(values: np.ndarray | pl.Series, valid: np.ndarray, dtype: pl.DataType | None = None) -> pl.Series:
    """``values`` where ``valid``, null elsewhere (cast to ``dtype`` when given)."""
    series = values if isinstance(values, pl.Series) else pl.Series(values)
    if dtype is not None:
        series = series.cast(dtype)
    if valid.all():
        return series
    return pl.select(pl.when(pl.lit(pl.Series(valid))).then(pl.lit(series))).to_series()


class _Grouped:
    """Per-profile reductions of event rows, by the row's profile position (``rows``)."""

    def __init__(self, rows: np.ndarray, size: int) -> None:
        self.rows = rows.astype(np.intp, copy=False)  # bincount and indexing convert anything else, per call
        self.size = size

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        rows = self.rows if mask is None else self.rows[mask]
        return np.bincount(rows, minlength=self.size)

    def total(self, weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        # float64 always: numpy gives integers for an empty ``weights``, whatever its type
        if mask is None:
            return np.bincount(self.rows, weights=weights, minlength=self.size).astype(np.float64, copy=False)
        return np.bincount(self.rows[mask], weights=weights[mask], minlength=self.size).astype(np.float64, copy=False)

    def count_by(self, keys: np.ndarray, width: int, mask: np.ndarray | None = None) -> np.ndarray:
        """(profiles, width) counts of each key 0..width-1 (negative keys ignored): one bincount of row*width+key."""
        keep = keys >= 0 if mask is None else mask & (keys >= 0)
        rows, picked = (self.rows, keys) if keep.all() else (self.rows[keep], keys[keep])
        return np.bincount(rows * width + picked, minlength=self.size * width).reshape(self.size, width)

    def distinct(self, keys: np.ndarray, width: int, rows: np.ndarray | None = None) -> np.ndarray:
        """How many different keys 0..width-1 each profile has (negative keys ignored).

        Keys 1.. are counted per profile over their rows only; key 0 by difference with each
        profile's rows with a key (key 0 is often most rows: the web channel). ``rows``: each
        profile's row count (:meth:`count`), if known, saves a count when no key is negative.
        """
        if width == 0:
            return np.zeros(self.size, dtype=np.int64)
        keyed = keys >= 0
        every = bool(keyed.all())
        total = rows if every and rows is not None else self.count(None if every else keyed)
        later = keys >= 1
        rest = _Grouped(self.rows[later], self.size).count_by(keys[later] - 1, width - 1)
        many: np.ndarray = (rest > 0).sum(axis=1) + (total > rest.sum(axis=1))
        return many.astype(np.int64)

    def extremes(self, values: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of integer ``values`` per profile (meaningless where a profile has no row)."""
        rows, picked = (self.rows, values) if mask is None else (self.rows[mask], values[mask])
        bounds = np.iinfo(values.dtype)
        low, high = np.full(self.size, bounds.max, dtype=values.dtype), np.full(self.size, bounds.min, values.dtype)
        np.minimum.at(low, rows, picked)  # unbuffered ufunc.at has a fast path for plain arrays (numpy >= 1.25)
        np.maximum.at(high, rows, picked)
        return low, high

    def first_value(self, frame: pl.DataFrame, name: str) -> pl.Series:
        """For ``frame`` (``_row``, ``name``, sorted by priority): each profile's first value (null if none)."""
        best = frame.group_by("_row", maintain_order=True).first()
        slots = pl.DataFrame({"_row": np.arange(self.size, dtype=np.uint32)})
        return slots.join(best, on="_row", how="left", maintain_order="left")[name]


def _member(codes: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """``codes`` (from :func:`label_codes`, -1 for null) that are one of ``wanted``: a table look-up per row."""
    # Slot 0 is null (-1), slot c + 1 code c, and the last slot (False) every code above the
    # largest wanted one: clamping those onto the largest wanted code's slot counted them in.
    table = np.zeros(max([*wanted, -1]) + 3, dtype=bool)
    table[[w + 1 for w in wanted if w >= 0]] = True  # -2: a label absent from the events
    found: np.ndarray = table[np.minimum(codes, table.size - 2) + 1]  # codes >= -1, so the index is >= 0
    return found


def label_lists(held: np.ndarray, labels: Sequence[str]) -> pl.Series:
    """Per row of the (rows, labels) boolean matrix, the list of labels it holds (in ``labels`` order)."""
    columns = np.flatnonzero(held) % max(held.shape[1], 1)  # row-major: each row's labels in column order
    offsets = np.zeros(held.shape[0] + 1, dtype=np.int64)
    np.cumsum(held.sum(axis=1), out=offsets[1:])
    values = pl.Series(list(labels), dtype=pl.String).gather(columns).to_arrow()  # no Python string per element
    # Arrow arrays made by Polars: the first ``pa.array`` of a process costs ~0.4 s (pyarrow's numpy import).
    series = pl.from_arrow(pa.LargeListArray.from_arrays(pl.Series(offsets).to_arrow(), values))
    assert isinstance(series, pl.Series)
    return series.cast(pl.List(pl.String))


def _argmax(counts: np.ndarray, keys: Sequence[str], name: str) -> pl.Series:
    """The key whose count is largest (null when all are 0; ties: the first key in sorted order)."""
    if not keys:
        return pl.Series(name, [None] * counts.shape[0], dtype=pl.String)
    picked = pl.Series(name, list(keys), dtype=pl.String).gather(counts.argmax(axis=1))
    return _nullable(picked, counts.max(axis=1) > 0).alias(name)


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

    Two cores: some counts are computed in a forked child (:mod:`cdp.segments._forked_counts`;
    forked only while this process runs a single thread), the favourite store and the survey
    answers (Polars) on a thread started after the fork.
    """
    now = as_of or datetime.now(UTC)
    options = config or TagsConfig()
    # No events (none yet, or none this context may see) goes the same way: every column there,
    # null for every profile, so segment and tag rules over them still compile.
    if not events.select((pl.col("occurred_at") <= pl.lit(now)).fill_null(False).all()).item():
        events = events.filter(pl.col("occurred_at") <= pl.lit(now))  # a copy of every column: only when needed
    events, keys = _positions(events, profiles)
    groups = _Grouped(events["_row"].to_numpy(), keys.len())
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
    stamp = events["occurred_at"].to_physical().to_numpy()
    unit = getattr(ts_type, "time_unit", "us") or "us"
    per_day = {"ns": 86_400_000_000_000, "us": DAY_US, "ms": 86_400_000}[unit]
    moment = pl.select(pl.lit(now).cast(ts_type).to_physical()).item()

    def since(days: int) -> int:  # "at most ``days`` old" is ``stamp >= since(days)`` (exact, in the column's unit)
        return int(moment - days * per_day)

    specs = list({spec.key: spec for spec in event_specs}.values())
    coded = label_codes(events, ("event_name", "channel", "category"))
    (name, names), (channel, channels), (kind, kinds) = coded.values()
    # Counted events: not ``identify`` (nor a null type); compared on the Categorical's codes by Polars.
    counting = events.select((pl.col("event_type") != "identify").fill_null(False).alias("c"))["c"]
    rates = _rates(events, options)

    def subset(at: np.ndarray) -> tuple[_Grouped, np.ndarray, np.ndarray]:
        """(grouping, timestamps, amounts in the reporting currency) of the rows ``at`` (a null revenue counts 0)."""
        revenue = events["revenue"].gather(at).fill_null(0.0).to_numpy()
        return _Grouped(groups.rows[at], groups.size), stamp[at], revenue * rates(at)

    seen = groups.count()
    product = _member(name, [_position(names, n) for n in PRODUCT_EVENTS])
    product &= stamp >= since(options.interests.window_days)
    # The three counts over every event row that the others do not need, in a forked child (numpy only).
    in_child = ForkedCounts(
        [
            lambda: groups.distinct(channel, len(channels), seen),
            lambda: groups.count_by(kind, len(kinds), product),  # categories of product events in the window
            lambda: groups.extremes(stamp),
        ],
        events=events.height,
    )
    with in_child, ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-attributes") as pool:
        # The favourite store and the survey answers are Polars group-bys, which let go of the GIL: on a
        # thread, they use a core while the numpy counts below (which hold it) run on this one.
        polars_part = pool.submit(_store_and_survey, events, groups)
        order_at = np.flatnonzero(name == _position(names, ORDER_EVENT))
        orders, o_stamp, o_amount = subset(order_at)
        order_count = orders.count()
        first_order, last_order = orders.extremes(o_stamp)
        out: dict[str, pl.Series | np.ndarray | None] = {
            "profile_id": keys,
            "first_seen": None,  # from the child, below
            "last_seen": None,
            "last_order_at": _nullable(last_order, order_count > 0, ts_type),
            "first_order_at": _nullable(first_order, order_count > 0, ts_type),
            "order_count": order_count,
            "revenue_lifetime": orders.total(o_amount),
            "event_count": seen if counting.all() else groups.count(counting.to_numpy()),
            "orders_prev_90d": orders.count((o_stamp < since(90)) & (o_stamp >= since(180))),
        }
        for days in WINDOWS:
            within = o_stamp >= since(days)
            out[f"orders_{days}d"] = orders.count(within)
            out[f"revenue_{days}d"] = orders.total(o_amount, within)
        # Each spec looks only at the rows of its event within the widest window asked of that event.
        widest: dict[str, int] = {}
        for spec in specs:
            widest[spec.event] = max(widest.get(spec.event, 0), spec.start_days)
        by_event = {ORDER_EVENT: (order_at, orders, o_stamp, o_amount)}
        for event, days in widest.items():
            if event not in by_event:
                at = np.flatnonzero((name == _position(names, event)) & (stamp >= since(days)))
                by_event[event] = (at, *subset(at))
        for spec in specs:
            at, grouped, when, amount = by_event[spec.event]
            picked = when >= since(spec.start_days)
            if spec.end_days:
                picked &= when < since(spec.end_days)
            if spec.revenue_over is not None:
                picked &= amount > spec.revenue_over
            if spec.channel is not None:
                picked &= channel[at] == _position(channels, spec.channel)
            if spec.category is not None:
                picked &= kind[at] == _position(kinds, spec.category)
            out[spec.count_column] = grouped.count(picked)
            out[spec.revenue_column] = grouped.total(amount, picked)
        channel_count, browsing, (first_seen, last_seen) = in_child.results()
        out["first_seen"] = _nullable(first_seen, seen > 0, ts_type)  # placed first in the dict: the column order
        out["last_seen"] = _nullable(last_seen, seen > 0, ts_type)
        browsed = np.asarray(browsing.any(axis=0))
        categories = [k for k, used in zip(kinds, browsed.tolist(), strict=True) if used]
        if not browsed.all():
            browsing = browsing[:, browsed]
        wanted = [(i, c) for i, c in enumerate(categories) if c in options.interests.categories]
        liked = browsing >= options.interests.min_browsing_events
        out["preferred_channel"] = _argmax(
            orders.count_by(channel[order_at], len(channels)), channels, "preferred_channel"
        )
        out["favourite_category"] = _argmax(browsing, categories, "favourite_category")
        out["browsed_categories"] = label_lists(liked[:, [i for i, _ in wanted]], [c for _, c in wanted])
        out["channel_count"] = channel_count
        frame = pl.DataFrame(out)
        favourite, survey = polars_part.result()
        if favourite is not None:
            frame = frame.with_columns(favourite)
        if survey is not None:
            frame = pl.concat([frame, survey], how="horizontal")
        if not (seen > 0).all():  # profiles without events: every computed column is null, as after a left join
            frame = frame.with_columns(
                pl.when(pl.lit(pl.Series(seen > 0))).then(pl.col(c)).alias(c) for c in frame.columns[1:]
            )
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
