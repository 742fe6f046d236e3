"""Computed attributes per profile, from the behavioural event stream.

Input is the policy-checked events frame (no identifiers); output is one row
per profile with recency, frequency and monetary measures over windows
(revenue converted to one reporting currency), the purchase interval, the
preferred channel, favourite store and category, browsing interests and the
latest survey answers. Classifiers (:mod:`cdp.segments.classify`) turn these
into tags; segment definitions filter on them. Computed with Polars, in
memory, in a few passes over the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

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
    rate = pl.col("currency").str.to_uppercase().replace_strict(rates, default=1.0, return_dtype=pl.Float64)
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


def _mode(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """profile_id, name: the most frequent non-null value (ties: the alphabetically first)."""
    counted = frame.filter(pl.col(column).is_not_null()).group_by("profile_id", column).len()
    return (
        counted.sort(["profile_id", "len", column], descending=[False, True, False])
        .group_by("profile_id", maintain_order=True)
        .first()
        .select("profile_id", pl.col(column).alias(name))
    )


def _argmax(columns: dict[str, str], name: str) -> pl.Expr:
    """The key whose count column is largest (null when all are 0; ties: the first key in sorted order)."""
    keys = sorted(columns)
    if not keys:
        return pl.lit(None, dtype=pl.String).alias(name)
    best = pl.max_horizontal([pl.col(columns[k]) for k in keys])
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for key in reversed(keys):  # built inside out, so the first key wins a tie
        expr = pl.when(pl.col(columns[key]) == best).then(pl.lit(key)).otherwise(expr)
    return pl.when(best <= 0).then(pl.lit(None, dtype=pl.String)).otherwise(expr).alias(name)


def _survey(events: pl.DataFrame) -> pl.DataFrame | None:
    if "properties" not in events.columns:
        return None
    answers = events.filter(pl.col("event_name") == SURVEY_EVENT).sort("occurred_at")
    props = pl.col("properties")
    if answers.schema["properties"] == pl.String:
        props = props.str.json_decode(SURVEY_SCHEMA)
    fields = answers.select("profile_id", props.alias("p")).unnest("p")
    wanted = {"nps", "csat", "interests", "sentiment"}
    if not wanted <= set(fields.columns):
        return None
    return fields.group_by("profile_id").agg(
        pl.col("nps").drop_nulls().last().alias("nps_latest"),
        pl.col("csat").drop_nulls().last().alias("csat_latest"),
        pl.col("sentiment").drop_nulls().last().alias("sentiment_latest"),
        pl.col("interests").explode().drop_nulls().unique().sort().alias("survey_interests"),
        pl.len().alias("survey_count"),
    )


def compute_attributes(
    events: pl.DataFrame,
    *,
    as_of: datetime | None = None,
    config: TagsConfig | None = None,
    event_specs: Sequence[EventSpec] = (),
) -> pl.DataFrame:
    """One row per profile: first/last seen, orders and revenue per window, AOV, interval, channel, interests.

    Every per-row condition is computed first as a flat column; one grouped
    pass then only sums, mins and maxes plain columns (fast even with a
    million groups). Per-channel and per-category counts are such sums (there
    are few channels and categories); the favourite store (many values, few
    rows) and survey answers are small separate passes. The event-history
    measures of the segment definitions (``event_specs``) are computed in the
    same pass, so segments never scan the events again.
    """
    now = as_of or datetime.now(UTC)
    options = config or TagsConfig()
    if events.height == 0:
        return pl.DataFrame(schema={"profile_id": pl.String})
    events = events.filter(pl.col("occurred_at") <= pl.lit(now))
    ts = pl.col("occurred_at")
    order = pl.col("event_name") == ORDER_EVENT
    since = {days: pl.lit(now - timedelta(days=days)) for days in (*WINDOWS, 180, options.interests.window_days)}
    product = pl.col("event_name").is_in(PRODUCT_EVENTS) & (ts >= since[options.interests.window_days])
    channels = {str(c): i for i, c in enumerate(events["channel"].drop_nulls().unique().sort().to_list())}
    found = events.filter(product)["category"].drop_nulls().unique().sort().to_list()
    categories = {str(c): i for i, c in enumerate(found)}
    flat: list[pl.Expr] = [
        pl.col("profile_id"),
        ts,
        order.cast(pl.Int32).alias("_o"),
        pl.col("_r"),
        pl.when(order).then(ts).alias("_ot"),
        (pl.col("event_type") != "identify").cast(pl.Int32).alias("_e"),
        (order & (ts >= since[180]) & (ts < since[90])).cast(pl.Int32).alias("_prev"),
    ]
    sums = ["_o", "_r", "_e", "_prev"]
    for days in WINDOWS:
        flat.append((order & (ts >= since[days])).cast(pl.Int32).alias(f"_o{days}"))
        flat.append(pl.when(order & (ts >= since[days])).then(pl.col("_r")).otherwise(0.0).alias(f"_r{days}"))
        sums += [f"_o{days}", f"_r{days}"]
    for channel, i in channels.items():
        flat.append((pl.col("channel") == channel).cast(pl.Int32).alias(f"_any{i}"))
        flat.append((order & (pl.col("channel") == channel)).cast(pl.Int32).alias(f"_ch{i}"))
        sums += [f"_any{i}", f"_ch{i}"]
    for category, i in categories.items():
        flat.append((product & (pl.col("category") == category)).cast(pl.Int32).alias(f"_cat{i}"))
        sums.append(f"_cat{i}")
    specs = list({spec.key: spec for spec in event_specs}.values())
    helpers, spec_flat = spec_columns(events, specs, as_of=now, config=options)
    flat.extend(spec_flat)
    sums += [c for spec in specs for c in (spec.count_column, spec.revenue_column)]
    prepared = (
        events.lazy()
        .with_columns(pl.when(order).then(base_revenue(events, options)).otherwise(0.0).alias("_r"), *helpers)
        .select(flat)
    )
    frame = (
        prepared.group_by("profile_id")
        .agg(
            ts.min().alias("first_seen"),
            ts.max().alias("last_seen"),
            pl.col("_ot").max().alias("last_order_at"),
            pl.col("_ot").min().alias("first_order_at"),
            *[pl.col(c).sum() for c in sums],
        )
        .collect()
    )
    browsed = [
        pl.when(pl.col(f"_cat{i}") >= options.interests.min_browsing_events).then(pl.lit(category))
        for category, i in categories.items()
        if category in options.interests.categories
    ]
    interests = pl.concat_list(browsed).list.drop_nulls() if browsed else pl.lit([], dtype=pl.List(pl.String))
    renames = {"_o": "order_count", "_r": "revenue_lifetime", "_e": "event_count", "_prev": "orders_prev_90d"}
    for days in WINDOWS:
        renames.update({f"_o{days}": f"orders_{days}d", f"_r{days}": f"revenue_{days}d"})
    frame = (
        frame.with_columns(
            _argmax({c: f"_ch{i}" for c, i in channels.items()}, "preferred_channel"),
            _argmax({c: f"_cat{i}" for c, i in categories.items()}, "favourite_category"),
            interests.alias("browsed_categories"),
            pl.sum_horizontal([pl.col(f"_any{i}") > 0 for i in channels.values()] or [pl.lit(0)])
            .cast(pl.Int64)
            .alias("channel_count"),
        )
        .drop([c for c in frame.columns if c.startswith(("_any", "_ch", "_cat"))])
        .rename(renames)
        .with_columns(pl.col(c).cast(pl.Int64) for c in ("order_count", "event_count", "orders_prev_90d"))
        .with_columns(pl.col(f"orders_{days}d").cast(pl.Int64) for days in WINDOWS)
        .with_columns(pl.col(spec.count_column).cast(pl.Int64) for spec in specs)
    )
    stores = (
        _mode(events.filter(pl.col("store_id").is_not_null()), "store_id", "favourite_store")
        if "store_id" in events.columns
        else None
    )
    for extra in (stores, _survey(events)):
        if extra is not None:
            frame = frame.join(extra, on="profile_id", how="left")
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
    ).sort("profile_id")
