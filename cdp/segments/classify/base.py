"""What a classifier is, and running a chain of them over the attributes frame.

Classifiers are plugins (the ``cdp_classifiers`` hook): each takes the
computed-attributes frame (one row per profile, no identifiers) and the
loaded tags file, and returns new attribute columns plus the tags each
profile holds now. The host runs them in ``order``, each seeing the columns
added by the ones before, then stores tag gains and losses with history.
Every tag a classifier can assign is declared in its catalogue, so a tag
that nobody holds any more is synced to empty (its holders lose it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import polars as pl

from cdp._exceptions import ConfigurationError
from cdp.segments.config import TAXONOMIES, TagsConfig

TAGS_SCHEMA = {"profile_id": pl.String, "tag": pl.String}


@dataclass(frozen=True)
class TagSpec:
    name: str
    taxonomy: str  # basic | behavioural | interest | value
    description: str = ""


@dataclass(frozen=True)
class Classification:
    """What one classifier computed: extra columns, held tags, and every tag it may assign."""

    attributes: pl.DataFrame | None = None  # profile_id + new columns
    tags: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TAGS_SCHEMA))
    catalogue: tuple[TagSpec, ...] = ()


@runtime_checkable
class Classifier(Protocol):
    name: str
    order: int

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification: ...


@dataclass(frozen=True)
class ClassifiedSnapshot:
    attributes: pl.DataFrame
    tags: pl.DataFrame  # profile_id, tag (rule and classifier tags)
    catalogue: dict[str, TagSpec]
    origin: dict[str, str]  # tag -> classifier name


def empty_tags() -> pl.DataFrame:
    return pl.DataFrame(schema=TAGS_SCHEMA)


def tags_from_column(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    """(profile_id, "prefix:value") for every non-null value of ``column``."""
    if column not in frame.columns:
        return empty_tags()
    return frame.filter(pl.col(column).is_not_null()).select(
        "profile_id", (pl.lit(f"{prefix}:") + pl.col(column).cast(pl.String)).alias("tag")
    )


def tags_from_list(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    """One tag per element of a list column."""
    if column not in frame.columns:
        return empty_tags()
    return (
        frame.select("profile_id", pl.col(column).alias("value"))
        .explode("value")
        .filter(pl.col("value").is_not_null())
        .select("profile_id", (pl.lit(f"{prefix}:") + pl.col("value")).alias("tag"))
        .unique()
    )


def catalogue(prefix: str, values: Iterable[str], taxonomy: str, description: str) -> tuple[TagSpec, ...]:
    return tuple(TagSpec(f"{prefix}:{v}", taxonomy, description.format(value=v)) for v in values)


def collect_classifiers(results: Iterable[Any]) -> list[Classifier]:
    """Flatten the lists returned by the hook; refuse objects that are not classifiers."""
    found: list[Classifier] = []
    for batch in results:
        for item in batch or ():
            if not isinstance(item, Classifier):
                raise ConfigurationError(f"plugin returned {item!r}, which is not a classifier (name, order, classify)")
            found.append(item)
    return sorted(found, key=lambda c: (c.order, c.name))


def run_classifiers(
    attributes: pl.DataFrame, classifiers: Sequence[Classifier], config: TagsConfig
) -> ClassifiedSnapshot:
    frame = attributes
    parts: list[pl.DataFrame] = []
    specs: dict[str, TagSpec] = {}
    origin: dict[str, str] = {}
    for classifier in classifiers:
        result = classifier.classify(frame, config)
        if result.attributes is not None and result.attributes.width > 1:
            clash = (set(result.attributes.columns) - {"profile_id"}) & set(frame.columns)
            if clash:
                raise ConfigurationError(f"classifier {classifier.name!r} overwrites attributes {sorted(clash)}")
            frame = frame.join(result.attributes, on="profile_id", how="left")
        for spec in result.catalogue:
            if spec.taxonomy not in TAXONOMIES:
                raise ConfigurationError(
                    f"classifier {classifier.name!r}: tag {spec.name!r} has unknown taxonomy {spec.taxonomy!r}"
                )
            if spec.name in origin and origin[spec.name] != classifier.name:
                raise ConfigurationError(
                    f"tag {spec.name!r} is assigned by both {origin[spec.name]!r} and {classifier.name!r}"
                )
            specs[spec.name] = spec
            origin[spec.name] = classifier.name
        if result.tags.height:
            unknown = set(result.tags["tag"].unique().to_list()) - specs.keys()
            if unknown:
                raise ConfigurationError(
                    f"classifier {classifier.name!r} assigns tags missing from its catalogue: {sorted(unknown)[:5]}"
                )
            parts.append(result.tags.select(pl.col("profile_id").cast(pl.String), pl.col("tag").cast(pl.String)))
    tags = pl.concat(parts).unique() if parts else empty_tags()
    return ClassifiedSnapshot(frame, tags, specs, origin)
