"""Interest and psychographic tags: declared survey interests, browsing, satisfaction.

An interest is tagged when a person declared it in a survey or browsed,
added or bought products of that category at least ``min_browsing_events``
times in the window (both from :func:`cdp.segments.attributes.compute_attributes`).
Satisfaction from the latest survey: NPS promoter (9-10), passive (7-8),
detractor (0-6), and the feedback sentiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from cdp.segments.attributes import label_lists
from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

NPS_GROUPS = ("promoter", "passive", "detractor")
SENTIMENTS = ("positive", "neutral", "negative")
NPS_GROUP = pl.Enum(NPS_GROUPS)  # the columns' types: a byte a row
SENTIMENT = pl.Enum(SENTIMENTS)


def allowed_lists(frame: pl.DataFrame, sources: Sequence[str], allowed: Sequence[str]) -> pl.Series:
    """Per row, the sorted distinct elements of the ``sources`` list columns that are ``allowed`` (never null).

    The same as concatenating the lists, intersecting with ``allowed``, then
    unique and sort, but computed over the flattened elements at once (list
    operations per row cost seconds for a million rows).
    """
    labels = sorted(set(allowed))
    held = np.zeros((frame.height, len(labels)), dtype=bool)
    for source in sources:
        lists = frame[source]
        values = lists.explode(empty_as_null=False, keep_nulls=False)  # every element, in row order
        rows = np.repeat(np.arange(frame.height), lists.list.len().fill_null(0).to_numpy())
        codes = values.replace_strict(labels, list(range(len(labels))), default=-1, return_dtype=pl.Int32)
        found = codes.fill_null(-1).to_numpy()
        held[rows[found >= 0], found[found >= 0]] = True
    return label_lists(held, labels)


def interests(attributes: pl.DataFrame, config: TagsConfig) -> pl.DataFrame:
    """profile_id, interests (declared or browsed, within the configured categories), nps_group."""
    allowed = list(config.interests.categories)
    sources = [c for c in ("survey_interests", "browsed_categories") if c in attributes.columns]
    exprs: list[pl.Expr] = []
    if sources:
        exprs.append(pl.lit(allowed_lists(attributes, sources, allowed)).alias("interests"))
    if "nps_latest" in attributes.columns:
        score = pl.col("nps_latest")
        exprs.append(
            pl.when(score >= 9)
            .then(pl.lit("promoter", NPS_GROUP))
            .when(score >= 7)
            .then(pl.lit("passive", NPS_GROUP))
            .when(score >= 0)
            .then(pl.lit("detractor", NPS_GROUP))
            .otherwise(None)
            .alias("nps_group")
        )
    return attributes.select("profile_id", *exprs)


@dataclass(frozen=True)
class InterestClassifier:
    name: str = "interests"
    order: int = 32

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if not config.interests.enabled:
            return Classification()
        frame = interests(attributes, config)
        if frame.width == 1:
            return Classification()
        specs: tuple[TagSpec, ...] = (
            *catalogue("interest", config.interests.categories, "interest", "interested in {value}"),
            *catalogue("nps", NPS_GROUPS, "interest", "latest NPS answer: {value}"),
            *catalogue("sentiment", SENTIMENTS, "interest", "latest survey feedback tone: {value}"),
        )
        renamed = {"interests": "interest", "nps_group": "nps"}
        tags = frame.select("profile_id", *[pl.col(c).alias(p) for c, p in renamed.items() if c in frame.columns])
        if "sentiment_latest" in attributes.columns:  # frame is a select of attributes: the rows are aligned
            latest = attributes["sentiment_latest"]
            tags = tags.with_columns(latest.cast(pl.String).cast(SENTIMENT, strict=False).alias("sentiment"))
        return Classification(attributes=frame, tag_frame=tags, catalogue=specs)
