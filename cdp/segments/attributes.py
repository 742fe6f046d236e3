"""Computed attributes per profile, from the behavioural event stream.

Input is the policy-checked events frame (no identifiers); output is one row
per profile with recency, frequency and monetary measures over windows, the
preferred channel, and survey scores. Computed with Polars, in memory.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

WINDOWS = (30, 90, 365)


def compute_attributes(events: pl.DataFrame, *, as_of: datetime | None = None) -> pl.DataFrame:
    """One row per profile: first/last seen, orders and revenue per window, AOV, channel."""
    now = as_of or datetime.now(UTC)
    if events.height == 0:
        return pl.DataFrame(schema={"profile_id": pl.String})
    ts = pl.col("occurred_at")
    is_order = pl.col("event_name") == "Order Completed"
    revenue = pl.when(is_order).then(pl.col("revenue").fill_null(0.0)).otherwise(0.0)
    aggregations: list[pl.Expr] = [
        ts.min().alias("first_seen"),
        ts.max().alias("last_seen"),
        is_order.sum().cast(pl.Int64).alias("order_count"),
        revenue.sum().alias("revenue_lifetime"),
        ts.filter(is_order).max().alias("last_order_at"),
        ts.filter(is_order).min().alias("first_order_at"),
        pl.col("channel").filter(is_order).mode().first().alias("preferred_channel"),
        pl.col("store_id").filter(pl.col("store_id").is_not_null()).mode().first().alias("favourite_store"),
        pl.col("category").filter(pl.col("category").is_not_null()).mode().first().alias("favourite_category"),
        pl.col("channel").n_unique().alias("channel_count"),
    ]
    for days in WINDOWS:
        recent = ts >= pl.lit(now).dt.offset_by(f"-{days}d")
        aggregations.append((is_order & recent).sum().cast(pl.Int64).alias(f"orders_{days}d"))
        aggregations.append(pl.when(recent).then(revenue).otherwise(0.0).sum().alias(f"revenue_{days}d"))
    frame = events.group_by("profile_id").agg(aggregations)
    return frame.with_columns(
        pl.when(pl.col("order_count") > 0)
        .then(pl.col("revenue_lifetime") / pl.col("order_count"))
        .otherwise(None)
        .alias("average_order_value"),
        ((pl.lit(now) - pl.col("last_order_at")).dt.total_days()).alias("days_since_last_order"),
        ((pl.lit(now) - pl.col("last_seen")).dt.total_days()).alias("days_since_last_seen"),
        ((pl.lit(now) - pl.col("first_seen")).dt.total_days()).alias("days_since_first_seen"),
        pl.when(pl.col("order_count") > 1)
        .then((pl.col("last_order_at") - pl.col("first_order_at")).dt.total_days() / (pl.col("order_count") - 1))
        .otherwise(None)
        .alias("purchase_interval_days"),
    ).sort("profile_id")
