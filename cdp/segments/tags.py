"""Built-in rule tags: lifecycle stage, value tier, multi-channel.

Each rule maps the computed-attributes frame to the set of profiles that hold
the tag now; the access layer stores gains and losses with history.
Thresholds are arguments so ``policies/`` or a tags file can change them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class LifecycleThresholds:
    new_days: int = 30
    active_days: int = 90
    at_risk_days: int = 180
    loyal_orders_365d: int = 4


def lifecycle_stage(attributes: pl.DataFrame, thresholds: LifecycleThresholds = LifecycleThresholds()) -> pl.DataFrame:
    """profile_id, lifecycle: new | loyal | active | at_risk | churned."""
    seen = pl.col("days_since_last_seen")
    stage = (
        pl.when(pl.col("days_since_first_seen") <= thresholds.new_days)
        .then(pl.lit("new"))
        .when((seen <= thresholds.active_days) & (pl.col("orders_365d") >= thresholds.loyal_orders_365d))
        .then(pl.lit("loyal"))
        .when(seen <= thresholds.active_days)
        .then(pl.lit("active"))
        .when(seen <= thresholds.at_risk_days)
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("churned"))
    )
    return attributes.select("profile_id", stage.alias("lifecycle"))


def value_tier(attributes: pl.DataFrame) -> pl.DataFrame:
    """profile_id, value_tier: high (top 20% of 365-day revenue), mid, low, potential, none."""
    buyers = attributes.filter(pl.col("revenue_365d") > 0)
    if buyers.height == 0:
        return attributes.select("profile_id", pl.lit("none").alias("value_tier"))
    high_cut = buyers["revenue_365d"].quantile(0.8) or 0.0
    mid_cut = buyers["revenue_365d"].quantile(0.4) or 0.0
    rising = (pl.col("orders_90d") * 4) > pl.col("orders_365d")
    tier = (
        pl.when(pl.col("revenue_365d") <= 0)
        .then(pl.lit("none"))
        .when(pl.col("revenue_365d") >= high_cut)
        .then(pl.lit("high"))
        .when(pl.col("revenue_365d") >= mid_cut)
        .then(pl.lit("mid"))
        .when(rising & (pl.col("orders_90d") >= 2))
        .then(pl.lit("potential"))
        .otherwise(pl.lit("low"))
    )
    return attributes.select("profile_id", tier.alias("value_tier"))


def builtin_tags(attributes: pl.DataFrame) -> dict[str, tuple[str, set[str]]]:
    """tag name -> (taxonomy, holders)."""
    out: dict[str, tuple[str, set[str]]] = {}
    if attributes.height == 0:
        return out
    stages = lifecycle_stage(attributes)
    for stage in ("new", "active", "loyal", "at_risk", "churned"):
        out[f"lifecycle:{stage}"] = (
            "behavioural",
            set(stages.filter(pl.col("lifecycle") == stage)["profile_id"].to_list()),
        )
    tiers = value_tier(attributes)
    for tier in ("high", "mid", "low", "potential"):
        out[f"value:{tier}"] = ("value", set(tiers.filter(pl.col("value_tier") == tier)["profile_id"].to_list()))
    out["omnichannel"] = ("behavioural", set(attributes.filter(pl.col("channel_count") >= 2)["profile_id"].to_list()))
    return out
