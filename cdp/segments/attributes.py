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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec

WINDOWS = (30, 90, 365)
ORDER_EVENT = "Order Completed"
SURVEY_EVENT = "Survey Submitted"
PRODUCT_EVENTS = ("Product Viewed", "Product Added", "Product", ORDER_EVENT)
SURVEY_SCHEMA = pl.Struct({"nps": pl.Int64, "csat": pl.Int64, "interests": pl.List(pl.String), "sentiment": pl.String})


def base_revenue(events: pl.DataFrame, config: TagsConfig) -> pl.Expr:
    """Order revenue in the reporting currency (unknown currencies count at rate 1)."""
    rates = {code.upper(): float(rate) for code, rate in config.currency.rates.items()}
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


def _code(column: str, values: Sequence[str]) -> pl.Expr:
    """The position of each row's value in ``values`` (-1 for other values and nulls)."""
    mapping = {v: i for i, v in enumerate(values)}
    small = pl.Int8 if len(values) < 127 else pl.Int16 if len(values) < 32_767 else pl.Int32  # less memory to touch
    return pl.col(column).replace_strict(mapping, default=-1, return_dtype=small).fill_null(-1)


def _label_codes(series: pl.Series, values: Sequence[str]) -> np.ndarray:
    """``_code`` of a column as a numpy array; for a Categorical column through its integer codes.

    The store hands event labels over as Categorical: mapping the few distinct labels and then
    looking every row's code up in a small table costs a fraction of matching 10M strings.
    """
    if not isinstance(series.dtype, pl.Categorical | pl.Enum):
        return series.to_frame().select(_code(series.name, values)).to_series().to_numpy()
    small = np.int8 if len(values) < 127 else np.int16 if len(values) < 32_767 else np.int32
    present = series.unique().drop_nulls()
    physical = present.to_physical().cast(pl.Int64).to_numpy()
    size = int(physical.max()) + 2 if physical.size else 1  # the last slot is for nulls
    table = np.full(size, -1, dtype=small)
    position = {v: i for i, v in enumerate(values)}
    for code, label in zip(physical.tolist(), present.cast(pl.String).to_list(), strict=True):
        table[code] = position.get(label, -1)
    codes: np.ndarray = table[series.to_physical().cast(pl.Int64).fill_null(size - 1).to_numpy()]
    return codes


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
        self.rows = rows
        self.size = size

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        rows = self.rows if mask is None else self.rows[mask]
        return np.bincount(rows, minlength=self.size)

    def total(self, weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if mask is None:
            return np.bincount(self.rows, weights=weights, minlength=self.size)
        return np.bincount(self.rows[mask], weights=weights[mask], minlength=self.size)

    def count_by(self, keys: np.ndarray, width: int, mask: np.ndarray | None = None) -> np.ndarray:
        """(profiles, width) counts of each key 0..width-1 (negative keys ignored): one bincount of row*width+key."""
        keep = keys >= 0 if mask is None else mask & (keys >= 0)
        flat = self.rows[keep].astype(np.int64) * width + keys[keep]
        return np.bincount(flat, minlength=self.size * width).reshape(self.size, width)

    def distinct(self, keys: np.ndarray, width: int) -> np.ndarray:
        """How many different keys 0..width-1 each profile has (negative keys ignored)."""
        if width > 8:
            many: np.ndarray = (self.count_by(keys, width) > 0).sum(axis=1).astype(np.int64)
            return many
        bits = np.zeros(self.size, dtype=np.uint8)  # one bit per key, OR-ed in place (ufunc.at fast path)
        np.bitwise_or.at(
            bits, self.rows, (np.left_shift(1, keys.astype(np.int16) + 1) >> 1).astype(np.uint8)
        )  # key -1: no bit
        ones = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
        found: np.ndarray = ones[bits]
        return found

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
    """``codes`` (from :func:`_code`, -1 for others) that are one of ``wanted``: a table look-up per row."""
    table = np.zeros(max([*wanted, 0]) + 2, dtype=bool)
    table[[w + 1 for w in wanted]] = True
    found: np.ndarray = table[np.minimum(codes, table.size - 2) + 1]  # codes >= -1, so the index is >= 0
    return found


def label_lists(held: np.ndarray, labels: Sequence[str]) -> pl.Series:
    """Per row of the (rows, labels) boolean matrix, the list of labels it holds (in ``labels`` order)."""
    columns = np.flatnonzero(held) % max(held.shape[1], 1)  # row-major: each row's labels in column order
    offsets = np.zeros(held.shape[0] + 1, dtype=np.int64)
    np.cumsum(held.sum(axis=1), out=offsets[1:])
    values = pa.array(list(labels), type=pa.large_string()).take(pa.array(columns))  # no Python string per element
    series = pl.from_arrow(pa.LargeListArray.from_arrays(pa.array(offsets), values))
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
    dropped), else the sorted distinct profile ids of the events.
    """
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
    """
    now = as_of or datetime.now(UTC)
    options = config or TagsConfig()
    if events.height == 0:
        return pl.DataFrame(schema={"profile_id": pl.String})
    events, keys = _positions(events.filter(pl.col("occurred_at") <= pl.lit(now)), profiles)
    groups = _Grouped(events["_row"].to_numpy(), keys.len())
    ts_type = events.schema["occurred_at"]
    stamp = events["occurred_at"].to_physical().to_numpy()
    unit = getattr(ts_type, "time_unit", "us") or "us"
    per_day = {"ns": 86_400_000_000_000, "us": DAY_US, "ms": 86_400_000}[unit]
    moment = pl.select(pl.lit(now).cast(ts_type).to_physical()).item()

    def since(days: int) -> int:  # "at most ``days`` old" is ``stamp >= since(days)`` (exact, in the column's unit)
        return int(moment - days * per_day)

    specs = list({spec.key: spec for spec in event_specs}.values())
    names = sorted({ORDER_EVENT, *PRODUCT_EVENTS, *(s.event for s in specs)})
    found = events.select(pl.col(c).drop_nulls().unique().implode() for c in ("channel", "category"))
    channels, kinds = (sorted(str(v) for v in found[c][0]) for c in ("channel", "category"))
    # Every string column is read once, in one select (Polars runs the expressions in parallel).
    coded = events.select(
        (pl.col("event_type") != "identify").fill_null(False).alias("_counted"),
        pl.col("revenue").is_not_null().alias("_priced"),
    )
    name, channel, kind = (
        _label_codes(events[c], labels)
        for c, labels in (("event_name", names), ("channel", channels), ("category", kinds))
    )
    order = name == names.index(ORDER_EVENT)
    # Revenue in the reporting currency, only where a measure reads it (a null revenue counts 0).
    priced = (order | _member(name, [names.index(s.event) for s in specs])) & coded["_priced"].to_numpy()
    amount = np.zeros(events.height)
    money = events.select(c for c in ("revenue", "currency") if c in events.columns).filter(pl.Series(priced))
    amount[priced] = money.select(base_revenue(money, options)).to_series().to_numpy()

    seen = groups.count()
    first_seen, last_seen = groups.extremes(stamp)
    orders = _Grouped(groups.rows[order], groups.size)
    o_stamp, o_amount = stamp[order], amount[order]
    order_count = orders.count()
    first_order, last_order = orders.extremes(stamp[order])
    out: dict[str, pl.Series | np.ndarray] = {
        "profile_id": keys,
        "first_seen": _nullable(first_seen, seen > 0, ts_type),
        "last_seen": _nullable(last_seen, seen > 0, ts_type),
        "last_order_at": _nullable(last_order, order_count > 0, ts_type),
        "first_order_at": _nullable(first_order, order_count > 0, ts_type),
        "order_count": order_count,
        "revenue_lifetime": orders.total(o_amount),
        "event_count": groups.count(coded["_counted"].to_numpy()),
        "orders_prev_90d": orders.count((o_stamp < since(90)) & (o_stamp >= since(180))),
    }
    for days in WINDOWS:
        within = o_stamp >= since(days)
        out[f"orders_{days}d"] = orders.count(within)
        out[f"revenue_{days}d"] = orders.total(o_amount, within)
    by_event: dict[str, np.ndarray] = {}  # each spec only looks at the rows of its event
    for spec in specs:
        if spec.event not in by_event:
            by_event[spec.event] = np.flatnonzero(name == names.index(spec.event))
        at = by_event[spec.event]
        picked = stamp[at] >= since(spec.start_days)
        if spec.end_days:
            picked &= stamp[at] < since(spec.end_days)
        if spec.revenue_over is not None:
            picked &= amount[at] > spec.revenue_over
        if spec.channel is not None:
            picked &= channel[at] == (channels.index(spec.channel) if spec.channel in channels else -2)
        if spec.category is not None:
            picked &= kind[at] == (kinds.index(spec.category) if spec.category in kinds else -2)
        rows, spent = groups.rows[at][picked], amount[at][picked]
        out[spec.count_column] = np.bincount(rows, minlength=groups.size)
        out[spec.revenue_column] = np.bincount(rows, weights=spent, minlength=groups.size)
    product = _member(name, [names.index(n) for n in PRODUCT_EVENTS]) & (stamp >= since(options.interests.window_days))
    # Categories: those of product events in the window, renumbered among themselves (sorted).
    browsed = np.bincount(kind[product & (kind >= 0)], minlength=len(kinds)) > 0
    categories = [k for k, used in zip(kinds, browsed, strict=True) if used]
    renumber = np.full(len(kinds) + 1, -1, dtype=np.int32)
    renumber[1:][browsed] = np.arange(len(categories))
    browsing = groups.count_by(renumber[kind.astype(np.int32) + 1], len(categories), product)
    wanted = [(i, c) for i, c in enumerate(categories) if c in options.interests.categories]
    liked = browsing >= options.interests.min_browsing_events
    out["preferred_channel"] = _argmax(orders.count_by(channel[order], len(channels)), channels, "preferred_channel")
    out["favourite_category"] = _argmax(browsing, categories, "favourite_category")
    out["browsed_categories"] = label_lists(liked[:, [i for i, _ in wanted]], [c for _, c in wanted])
    out["channel_count"] = groups.distinct(channel, len(channels))
    frame = pl.DataFrame(out)
    if "store_id" in events.columns:
        stores = events.select("_row", "store_id").filter(pl.col("store_id").is_not_null())
        counted = stores.group_by("_row", "store_id").len()
        ranked = counted.sort(["_row", "len", "store_id"], descending=[False, True, False])
        frame = frame.with_columns(groups.first_value(ranked, "store_id").alias("favourite_store"))
    survey = _survey(events, groups)
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
