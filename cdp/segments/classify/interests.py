"""Interest and psychographic tags: declared survey interests, browsing, satisfaction.

An interest is tagged when a person declared it in a survey or browsed,
added or bought products of that category at least ``min_browsing_events``
times in the window (both from :func:`cdp.segments.attributes.compute_attributes`).
Satisfaction from the latest survey: NPS promoter (9-10), passive (7-8),
detractor (0-6), and the feedback sentiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

NPS_GROUPS = ("promoter", "passive", "detractor")
SENTIMENTS = ("positive", "neutral", "negative")


def interests(attributes: pl.DataFrame, config: TagsConfig) -> pl.DataFrame:
    """profile_id, interests (declared or browsed, within the configured categories), nps_group."""
    allowed = list(config.interests.categories)
    sources = [c for c in ("survey_interests", "browsed_categories") if c in attributes.columns]
    exprs: list[pl.Expr] = []
    if sources:
        combined = pl.concat_list([pl.col(c).fill_null([]) for c in sources])
        exprs.append(combined.list.set_intersection(pl.lit(allowed)).list.unique().list.sort().alias("interests"))
    if "nps_latest" in attributes.columns:
        score = pl.col("nps_latest")
        exprs.append(
            pl.when(score >= 9)
            .then(pl.lit("promoter"))
            .when(score >= 7)
            .then(pl.lit("passive"))
            .when(score >= 0)
            .then(pl.lit("detractor"))
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
            tags = tags.with_columns(pl.when(latest.is_in(SENTIMENTS)).then(latest).alias("sentiment"))
        return Classification(attributes=frame, tag_frame=tags, catalogue=specs)
