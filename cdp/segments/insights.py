"""Insight tables: segment size over time, overlap, RFM grid, lifecycle funnel, regions.

Every table is an aggregate (counts and shares, never a person) computed from
a snapshot's attributes or from the store's membership history, so the CLI
can print them and :mod:`cdp.segments.charts` can draw them. Groups smaller
than ``min_group`` are shown as 0 in the regional table (no small-cell
disclosure); the default 1 keeps every count.
"""

from __future__ import annotations

from itertools import combinations

import polars as pl

from cdp.segments.classify.lifecycle import STAGES

REGION_LEVELS = (
    ("world_region", "world region (UN M49)"),
    ("world_subregion", "sub-region (UN M49)"),
    ("us_census_region", "US census region"),
    ("cn_region", "China region"),
    ("cn_zone", "China economic zone"),
)


def rfm_grid(attributes: pl.DataFrame) -> pl.DataFrame:
    """recency (5..1) x frequency score 1..5: number of buyers in each cell."""
    columns = {f"f{f}": pl.Int64 for f in range(1, 6)}
    if not {"rfm_recency", "rfm_frequency"} <= set(attributes.columns):
        return pl.DataFrame(schema={"recency": pl.Int8, **columns})
    counts = attributes.filter(pl.col("rfm_recency").is_not_null()).group_by("rfm_recency", "rfm_frequency").len()
    lookup = {(int(r), int(f)): int(n) for r, f, n in counts.iter_rows()}
    rows = [[r, *[lookup.get((r, f), 0) for f in range(1, 6)]] for r in range(5, 0, -1)]
    return pl.DataFrame(rows, schema={"recency": pl.Int8, **columns}, orient="row")


def rfm_cells(attributes: pl.DataFrame) -> pl.DataFrame:
    """cell, profiles, share of buyers, revenue (reporting currency), sorted by size."""
    if "rfm_cell" not in attributes.columns:
        return pl.DataFrame(schema={"cell": pl.String, "profiles": pl.UInt32, "share": pl.Float64})
    buyers = attributes.filter(pl.col("rfm_cell").is_not_null())
    return (
        buyers.group_by(pl.col("rfm_cell").alias("cell"))
        .agg(pl.len().alias("profiles"), pl.col("revenue_lifetime").sum().round(2).alias("revenue"))
        .with_columns((pl.col("profiles") / max(buyers.height, 1)).round(3).alias("share"))
        .sort(["profiles", "cell"], descending=[True, False])
        .select("cell", "profiles", "share", "revenue")
    )


def lifecycle_funnel(attributes: pl.DataFrame) -> pl.DataFrame:
    """stage (in lifecycle order), profiles, share of profiles with activity."""
    if "lifecycle" not in attributes.columns:
        return pl.DataFrame(schema={"stage": pl.String, "profiles": pl.Int64, "share": pl.Float64})
    counts = dict(attributes.filter(pl.col("lifecycle").is_not_null())["lifecycle"].value_counts().iter_rows())
    total = max(sum(counts.values()), 1)
    rows = [(stage, int(counts.get(stage, 0)), round(counts.get(stage, 0) / total, 3)) for stage in STAGES]
    return pl.DataFrame(rows, schema={"stage": pl.String, "profiles": pl.Int64, "share": pl.Float64}, orient="row")


def regional_distribution(attributes: pl.DataFrame, *, min_group: int = 1) -> pl.DataFrame:
    """level, region, profiles, share within the level (unknown regions are counted as "unknown")."""
    parts: list[pl.DataFrame] = []
    for column, label in REGION_LEVELS:
        if column not in attributes.columns:
            continue
        known = attributes.filter(pl.col(column).is_not_null()) if column.startswith(("us_", "cn_")) else attributes
        if known.height == 0:
            continue
        counted = (
            known.group_by(pl.col(column).cast(pl.String).fill_null("unknown").alias("region"))
            .len()
            .with_columns(
                pl.lit(label).alias("level"),
                pl.when(pl.col("len") >= min_group).then(pl.col("len")).otherwise(0).cast(pl.Int64).alias("profiles"),
            )
            .with_columns((pl.col("profiles") / known.height).round(3).alias("share"))
            .sort(["profiles", "region"], descending=[True, False])
            .select("level", "region", "profiles", "share")
        )
        parts.append(counted)
    schema = {"level": pl.String, "region": pl.String, "profiles": pl.Int64, "share": pl.Float64}
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def overlap(memberships: pl.DataFrame, segments: list[str] | None = None) -> pl.DataFrame:
    """For each pair of segments: members of both, of only one, and the Jaccard index."""
    names = segments or sorted(memberships["segment"].unique().to_list())
    sets = {n: set(memberships.filter(pl.col("segment") == n)["profile_id"].to_list()) for n in names}
    rows = []
    for a, b in combinations(names, 2):
        both = len(sets[a] & sets[b])
        union = len(sets[a] | sets[b])
        rows.append((a, b, len(sets[a]), len(sets[b]), both, round(both / union, 3) if union else 0.0))
    schema = {
        "segment_a": pl.String,
        "segment_b": pl.String,
        "size_a": pl.Int64,
        "size_b": pl.Int64,
        "both": pl.Int64,
        "jaccard": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def overlap_matrix(memberships: pl.DataFrame, segments: list[str] | None = None) -> pl.DataFrame:
    """segment x segment: members in both (the diagonal is the segment's size)."""
    names = segments or sorted(memberships["segment"].unique().to_list())
    sets = {n: set(memberships.filter(pl.col("segment") == n)["profile_id"].to_list()) for n in names}
    rows = [[a, *[len(sets[a] & sets[b]) for b in names]] for a in names]
    return pl.DataFrame(rows, schema={"segment": pl.String, **dict.fromkeys(names, pl.Int64)}, orient="row")


def latest_sizes(history: pl.DataFrame) -> pl.DataFrame:
    """segment, size now, first size, changes recorded, last change."""
    if history.height == 0:
        return pl.DataFrame(schema={"segment": pl.String, "size": pl.Int64, "first": pl.Int64, "changes": pl.UInt32})
    return (
        history.sort("segment", "at")
        .group_by("segment", maintain_order=True)
        .agg(
            pl.col("size").last().alias("size"),
            pl.col("size").first().alias("first"),
            pl.len().alias("changes"),
            pl.col("at").last().alias("last_change"),
        )
    )
