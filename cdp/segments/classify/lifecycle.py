"""Lifecycle stage (new, active, loyal, at risk, churned) and the churn-risk early warning.

The stage follows recency of any activity with configurable thresholds. The
early warning compares each buyer's silence with their own rhythm: the days
since their last order divided by their mean interval between orders. A
weekly shopper silent for a month is at risk long before a yearly shopper
silent for a month; a fixed threshold cannot see that.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

STAGES = ("new", "active", "loyal", "at_risk", "churned")
RISK_LEVELS = ("warning", "high")
# The columns' types: Enums (a byte a row), built from Enum literals (no string is made per row).
STAGE = pl.Enum(STAGES)
RISK = pl.Enum(RISK_LEVELS)


def lifecycle_stage(attributes: pl.DataFrame, config: TagsConfig, *, every_row: bool = False) -> pl.DataFrame:
    """profile_id, lifecycle (people seen at all; ``every_row``: every row, null for the others)."""
    t = config.lifecycle
    seen = pl.col("days_since_last_seen")
    stage = (
        pl.when(pl.col("days_since_first_seen") <= t.new_days)
        .then(pl.lit("new", STAGE))
        .when((seen <= t.active_days) & (pl.col("orders_365d") >= t.loyal_orders_365d))
        .then(pl.lit("loyal", STAGE))
        .when(seen <= t.active_days)
        .then(pl.lit("active", STAGE))
        .when(seen <= t.at_risk_days)
        .then(pl.lit("at_risk", STAGE))
        .otherwise(pl.lit("churned", STAGE))
    )
    if every_row:
        return attributes.select("profile_id", pl.when(seen.is_not_null()).then(stage).alias("lifecycle"))
    return attributes.filter(seen.is_not_null()).select("profile_id", stage.alias("lifecycle"))


def churn_risk(attributes: pl.DataFrame, config: TagsConfig, *, every_row: bool = False) -> pl.DataFrame:
    """profile_id, churn_drift (silence / own interval), churn_risk (warning | high | null).

    Only eligible buyers; ``every_row``: every row, null for the others.
    """
    c = config.churn_risk
    rule = (
        (pl.col("order_count") >= c.min_orders)
        & (pl.col("purchase_interval_days") > 0)
        & (pl.col("days_since_last_order") <= c.ignore_after_days)
    )
    eligible = attributes if every_row else attributes.filter(rule)
    drift = pl.col("days_since_last_order") / pl.col("purchase_interval_days")
    drift = (pl.when(rule).then(drift) if every_row else drift).alias("churn_drift")
    level = (
        pl.when(pl.col("churn_drift") >= c.high_ratio)
        .then(pl.lit("high", RISK))
        .when(pl.col("churn_drift") >= c.warning_ratio)
        .then(pl.lit("warning", RISK))
        .otherwise(None)
        .alias("churn_risk")
    )
    return eligible.select("profile_id", drift).with_columns(level)


@dataclass(frozen=True)
class LifecycleClassifier:
    name: str = "lifecycle"
    order: int = 10

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if "days_since_last_seen" not in attributes.columns:
            return Classification()
        columns: list[str] = []
        specs: tuple[TagSpec, ...] = ()
        frame: pl.DataFrame | None = None
        if config.lifecycle.enabled:
            frame = lifecycle_stage(attributes, config, every_row=True)  # aligned: attached without a join
            columns.append("lifecycle")
            specs += catalogue("lifecycle", STAGES, "behavioural", "lifecycle stage {value}")
        if config.churn_risk.enabled and "purchase_interval_days" in attributes.columns:
            risk = churn_risk(attributes, config, every_row=True)
            frame = risk if frame is None else pl.concat([frame, risk.drop("profile_id")], how="horizontal")
            columns.append("churn_risk")
            specs += catalogue("churn_risk", RISK_LEVELS, "behavioural", "churn risk {value}: silent longer than usual")
        if frame is None:
            return Classification()
        # Tag columns: lifecycle:<stage>, churn_risk:<level> (rows are only built when tags are written).
        return Classification(attributes=frame, tag_frame=frame.select("profile_id", *columns), catalogue=specs)
