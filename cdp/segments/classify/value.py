"""Value tiers: high, mid, low, and potential (low value now, buying more often lately).

Tiers rank buyers by revenue over the last 365 days (in the reporting
currency): the top ``high_share`` are high, the next ``mid_share`` mid, the
rest low. A low-value buyer whose orders in the last 90 days reach
``potential_min_orders_90d`` and exceed ``rising_ratio`` times their orders in
the 90 days before is "potential" instead. People with no revenue in the
year get no tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cdp.segments.classify.base import Classification, catalogue
from cdp.segments.config import TagsConfig

TIERS = ("high", "mid", "low", "potential")
TIER = pl.Enum(TIERS)  # the column's type: a byte a row, built from Enum literals
RANK = pl.get_index_type()  # what a rank and a count of rows are in Polars (UInt32; UInt64 in bigidx builds)


def value_tier(attributes: pl.DataFrame, config: TagsConfig, *, every_row: bool = False) -> pl.DataFrame:
    """profile_id, value_tier (only buyers: people with revenue in the last 365 days).

    ``every_row``: one row per attributes row instead, null for non-buyers.
    """
    options = config.value
    buyer = pl.col("revenue_365d") > 0
    buyers = attributes if every_row else attributes.filter(buyer)
    if buyers.height == 0:
        return pl.DataFrame(schema={"profile_id": pl.String, "value_tier": TIER})
    # Share of buyers strictly above: 0 for the top spender. Ties share the better tier.
    revenue = pl.when(buyer).then(pl.col("revenue_365d")) if every_row else pl.col("revenue_365d")
    amounts = buyers.select(revenue.drop_nulls().cast(pl.Float64)).to_series().to_numpy()
    shares = (options.high_share, options.high_share + options.mid_share)
    if np.isnan(amounts).any():  # NaN ranks first (descending): ranked as such
        above = (revenue.rank(method="min", descending=True) - 1) / (buyer.sum() if every_row else pl.len())
        high, mid = above < shares[0], above < shares[1]
    else:  # no rank: the smallest amount each share lets in (one pass), then a comparison a row
        high, mid = (
            pl.lit(False) if (bound := _lowest_within(amounts, share)) is None else revenue >= bound for share in shares
        )
    rising = (pl.col("orders_90d") >= options.potential_min_orders_90d) & (
        pl.col("orders_90d") > pl.col("orders_prev_90d") * options.rising_ratio
    )
    tier = (
        pl.when(high)
        .then(pl.lit("high", TIER))
        .when(mid)
        .then(pl.lit("mid", TIER))
        .when(rising)
        .then(pl.lit("potential", TIER))
        .otherwise(pl.lit("low", TIER))
    )
    return buyers.select("profile_id", (pl.when(buyer).then(tier) if every_row else tier).alias("value_tier"))


def _lowest_within(amounts: np.ndarray, share: float) -> float | None:
    """The smallest amount whose share of amounts strictly above it, ``(rank - 1) / n`` with the
    ``min`` rank in descending order, is below ``share``; None when no amount's is.

    The ranks whose share is below it are counted with Polars' own arithmetic over the ranks
    1..n (its division is not Python's: 6 / 10 reads 0.6000000000000001 there); an amount has
    fewer than ``count`` amounts above it exactly when it is at least the ``count``-th largest.
    """
    n = amounts.size
    places = pl.int_range(1, n + 1, eager=True).cast(RANK)
    count = int(pl.select(((pl.lit(places) - 1) / pl.lit(n, dtype=RANK) < share).sum()).item())
    return None if count == 0 else float(np.partition(amounts, n - count)[n - count])


@dataclass(frozen=True)
class ValueClassifier:
    name: str = "value"
    order: int = 21

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if not config.value.enabled or "revenue_365d" not in attributes.columns:
            return Classification()
        tiers = value_tier(attributes, config, every_row=True)
        return Classification(
            attributes=tiers,
            tag_frame=tiers.select("profile_id", pl.col("value_tier").alias("value")),
            catalogue=catalogue("value", TIERS, "value", "value tier {value} (365-day revenue)"),
        )
