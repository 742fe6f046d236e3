"""RFM: recency, frequency and monetary quintile scores (1-5) and the named cells.

Scores are quintiles among buyers (people with at least one order in the
window): 5 is the most recent, most frequent, highest spending fifth. Ties
share the lowest score of their group (a rank-``min`` quintile), so everyone
who bought exactly once gets the same frequency score whatever the order of
rows. The cell is read from a grid of recency score by the F/M score (the
mean of F and M, rounded half up), configurable in the tags file; the default
grid yields the standard cells: champions, loyal, potential loyalists, new,
promising, need attention, about to sleep, at risk, can't lose, hibernating
and lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cdp.segments.classify.base import Classification, catalogue
from cdp.segments.config import RFM_CELLS, TagsConfig

# Every RFM score ("111" ... "555"): the score column is an Enum of them (a byte a row).
SCORE_NAMES = {100 * r + 10 * f + m: f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
SCORE = pl.Enum(list(SCORE_NAMES.values()))


def quintile(values: pl.Expr, count: pl.Expr) -> pl.Expr:
    """1-5 by rank (ties take the group's lowest rank): 1 + floor(5 * (rank - 1) / n)."""
    rank = values.rank(method="min")
    return (1 + ((rank - 1) * 5 // count)).clip(1, 5).cast(pl.Int8)


def _counted(values: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """For integers in a range no wider than the column is long (days, order counts): (per value
    from the smallest, the ``min`` rank of its first occurrence; each row's value, from the
    smallest, 0 for a null). None for other columns (they are sorted instead)."""
    valid = values.drop_nulls()
    if not values.dtype.is_integer() or not valid.len():
        return None
    low, high = int(valid.min()), int(valid.max())  # type: ignore[arg-type]
    if high - low > values.len():
        return None
    counts = np.bincount(valid.to_numpy().astype(np.int64) - low, minlength=high - low + 1)
    return np.cumsum(counts) - counts + 1, values.fill_null(low).to_numpy().astype(np.int64) - low


def _with_nulls_of(values: pl.Series, found: np.ndarray, dtype: type[pl.DataType]) -> pl.Series:
    """``found`` as a Series named as ``values``, null where ``values`` is."""
    series = pl.Series(values.name, found, dtype=dtype)
    return pl.select(pl.when(values.is_not_null()).then(series)).to_series().alias(values.name)


def min_rank(values: pl.Series) -> pl.Series:
    """``values.rank(method="min")`` (nulls stay null), by counting where :func:`_counted` can
    (no sort: ~10x faster at 1M rows)."""
    counted = _counted(values)
    if counted is None:
        return values.rank(method="min")
    first, value = counted
    return _with_nulls_of(values, first[value], pl.UInt32)


def _quintiles(values: pl.Series, count: int) -> pl.Series:
    """:func:`quintile` of a Series; where the values can be counted, each distinct value's
    quintile is computed once and gathered (one pass over the rows, not six)."""
    counted = _counted(values)
    if counted is None:
        return _quintiles_by_order(values, count)
    first, value = counted
    per_value = np.clip(1 + (first - 1) * 5 // max(count, 1), 1, 5).astype(np.int8)
    return _with_nulls_of(values, per_value[value], pl.Int8)


def _quintiles_by_order(values: pl.Series, count: int) -> pl.Series:
    """:func:`quintile` of a Series of ``count`` non-null values (amounts) from four order statistics,
    not a rank (no sort: ~4x faster at 1M rows).

    A value's score is 1 + floor(5 * below / n), ``below`` the number of values under it (its
    ``min`` rank - 1); ``below`` reaches ceil(k * n / 5) exactly when the value exceeds the one at
    that place (from 1) in ascending order, so the score is 1 + how many of those four it exceeds.
    """
    valid = values.drop_nulls().cast(pl.Float64).to_numpy()
    if valid.size != count or not count or np.isnan(valid).any():  # NaN ranks last: ranked as such
        rank = values.rank(method="min").cast(pl.Int64)
        return (1 + ((rank - 1) * 5 // max(count, 1))).clip(1, 5).cast(pl.Int8)
    places = [-(-k * count // 5) - 1 for k in range(1, 5)]  # ceil(k n / 5), from 0
    bounds = np.partition(valid, places)[places]
    every = values.cast(pl.Float64).fill_null(0.0).to_numpy()
    scores = np.ones(every.size, dtype=np.int8)
    for bound in bounds:
        scores += every > bound
    return _with_nulls_of(values, scores, pl.Int8)


def cell_type(config: TagsConfig) -> pl.Enum:
    """The cell column's type: an Enum of every cell the configured grid names."""
    return pl.Enum(sorted({cell for row in config.rfm.grid.values() for cell in row}))


def rfm_scores(attributes: pl.DataFrame, config: TagsConfig, *, every_row: bool = False) -> pl.DataFrame:
    """profile_id, rfm_recency, rfm_frequency, rfm_monetary, rfm_fm, rfm_score, rfm_cell (buyers only).

    ``every_row``: one row per attributes row instead, null for non-buyers
    (the same scores: ranks ignore nulls), so no join is needed to attach them.
    """
    window = config.rfm.window_days
    if window is None:
        frequency, monetary = pl.col("order_count"), pl.col("revenue_lifetime")
    elif window in (30, 90, 365):
        frequency, monetary = pl.col(f"orders_{window}d"), pl.col(f"revenue_{window}d")
    else:  # other windows: frequency and monetary over the whole history still apply to recency
        frequency, monetary = pl.col("order_count"), pl.col("revenue_lifetime")
    buyer = (frequency > 0) & pl.col("days_since_last_order").is_not_null()
    buyers = attributes.filter(buyer) if not every_row else attributes
    if buyers.height == 0 or (every_row and not attributes.select(buyer.any()).item()):
        return pl.DataFrame(
            schema={
                "profile_id": pl.String,
                "rfm_recency": pl.Int8,
                "rfm_frequency": pl.Int8,
                "rfm_monetary": pl.Int8,
                "rfm_fm": pl.Int8,
                "rfm_score": SCORE,
                "rfm_cell": cell_type(config),
            }
        )

    def only(value: pl.Expr) -> pl.Expr:
        return pl.when(buyer).then(value) if every_row else value

    values = buyers.select(
        "profile_id",
        only(-pl.col("days_since_last_order")).alias("rfm_recency"),
        only(frequency).alias("rfm_frequency"),
        only(monetary).alias("rfm_monetary"),
    )
    n = int(buyers.select(buyer.sum()).item()) if every_row else buyers.height
    scored = values.with_columns(
        _quintiles(values[c], n).alias(c) for c in ("rfm_recency", "rfm_frequency", "rfm_monetary")
    ).with_columns(
        ((pl.col("rfm_frequency").cast(pl.Int16) + pl.col("rfm_monetary") + 1) // 2).cast(pl.Int8).alias("rfm_fm")
    )
    grid = {(r, fm + 1): cell for r, row in config.rfm.grid.items() for fm, cell in enumerate(row)}
    keys = pl.col("rfm_recency").cast(pl.Int16) * 10 + pl.col("rfm_fm")  # scores are 1-5: r * 10 + fm is unique
    mapping = {r * 10 + fm: cell for (r, fm), cell in grid.items()}
    return scored.with_columns(
        # "RFM" as three digits (each score is 1-5): one integer looked up among the 125 scores.
        (
            pl.col("rfm_recency").cast(pl.Int16) * 100
            + pl.col("rfm_frequency").cast(pl.Int16) * 10
            + pl.col("rfm_monetary")
        )
        .replace_strict(SCORE_NAMES, return_dtype=SCORE)
        .alias("rfm_score"),
        keys.replace_strict(mapping, return_dtype=cell_type(config)).alias("rfm_cell"),
    )


@dataclass(frozen=True)
class RfmClassifier:
    name: str = "rfm"
    order: int = 20

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if not config.rfm.enabled or "days_since_last_order" not in attributes.columns:
            return Classification()
        scores = rfm_scores(attributes, config, every_row=True)
        return Classification(
            attributes=scores,
            tag_frame=scores.select("profile_id", pl.col("rfm_cell").alias("rfm")),
            catalogue=catalogue("rfm", RFM_CELLS, "value", "RFM cell {value} (recency x frequency/monetary quintiles)"),
        )
