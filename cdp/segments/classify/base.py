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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import polars as pl
import pyarrow as pa

from cdp._exceptions import ConfigurationError
from cdp.segments.config import TAXONOMIES, TagsConfig

if TYPE_CHECKING:
    from cdp.segments.classify.ahead import EarlyResult

TAGS_SCHEMA = {"profile_id": pl.String, "tag": pl.String}


@dataclass(frozen=True)
class TagSpec:
    name: str
    taxonomy: str  # basic | behavioural | interest | value
    description: str = ""


class Classification:
    """What one classifier computed: extra columns, held tags, and every tag it may assign.

    Tags come as rows (``tags=``: profile_id, tag) or, much cheaper for tags
    every profile may hold, as columns (``tag_frame=``: profile_id plus one
    column per tag prefix, String or List(String); a value ``v`` in column
    ``p`` is the tag ``p:v``, null holds none). Segments read the columns
    directly; rows are only built (:attr:`tags`) when tags are written.
    """

    def __init__(
        self,
        attributes: pl.DataFrame | None = None,
        tags: pl.DataFrame | None = None,
        catalogue: tuple[TagSpec, ...] = (),
        tag_frame: pl.DataFrame | None = None,
    ) -> None:
        self.attributes = attributes
        self.tag_rows = tags if tags is not None else empty_tags()
        self.catalogue = catalogue
        self.tag_frame = tag_frame

    @property
    def tags(self) -> pl.DataFrame:
        """Every held tag as (profile_id, tag) rows, from the rows and the tag columns."""
        if self.tag_frame is None:
            return self.tag_rows
        return pl.concat([self.tag_rows.select("profile_id", "tag"), tags_from_frame(self.tag_frame)])


@runtime_checkable
class Classifier(Protocol):
    """A classifier plugin. It may also declare ``reads`` (a tuple of column names): the only attribute
    columns besides ``profile_id`` its result depends on; one that does may run on the profile frame,
    on another thread, while the events are read (:mod:`cdp.segments.classify.ahead`), so its
    ``classify`` must then not depend on anything else (nor change shared state)."""

    # Read-only: the built-in classifiers are frozen dataclasses.
    @property
    def name(self) -> str: ...

    @property
    def order(self) -> int: ...

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification: ...


@dataclass(frozen=True)
class ClassifiedSnapshot:
    attributes: pl.DataFrame
    tag_rows: pl.DataFrame  # profile_id, tag: the tags classifiers returned as rows
    catalogue: dict[str, TagSpec]
    origin: dict[str, str]  # tag -> classifier name
    tag_frame: pl.DataFrame | None = None  # tag columns (see Classification), rows aligned with attributes

    @property
    def tags(self) -> pl.DataFrame:
        """Every held tag as distinct (profile_id, tag) rows (built on demand: millions of rows)."""
        if self.tag_frame is None:
            return self.tag_rows
        return pl.concat([self.tag_rows, tags_from_frame(self.tag_frame)]).unique()


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


def tags_from_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """(profile_id, "column:value") rows of a tag frame (see :class:`Classification`)."""
    parts = [
        tags_from_list(frame, c, c) if isinstance(frame.schema[c], pl.List) else tags_from_column(frame, c, c)
        for c in frame.columns
        if c != "profile_id"
    ]
    return pl.concat(parts) if parts else empty_tags()


def frame_tag_names(frame: pl.DataFrame) -> set[str]:
    """Every distinct tag a tag frame holds (the distinct values of all columns in one select, in parallel)."""
    columns = [c for c in frame.columns if c != "profile_id"]
    if not columns:
        return set()
    found = frame.select(
        (pl.col(c).explode() if isinstance(frame.schema[c], pl.List) else pl.col(c))
        .drop_nulls()
        .unique()  # before the cast: an Enum's distinct codes, not a million strings
        .cast(pl.String)
        .implode()
        for c in columns
    )
    return {f"{c}:{v}" for c in columns for v in found[c][0]}


def _aligned(frame: pl.DataFrame, extra: pl.DataFrame) -> bool:
    return extra.height == frame.height and _same_values(extra["profile_id"], frame["profile_id"])


def _same_values(left: pl.Series, right: pl.Series) -> bool:
    """``left.equals(right)``, without comparing a million ids when both are the same memory (a
    classifier's columns beside the ids it was given, as usual): ~3 ms a comparison, a dozen a
    refresh (docs/benchmarks.md, Segments, seventeenth session)."""
    if left.dtype == right.dtype and left.n_chunks() == 1 and right.n_chunks() == 1:
        newest = pl.CompatLevel.newest()
        ours, theirs = left.to_arrow(compat_level=newest), right.to_arrow(compat_level=newest)
        if (ours.offset, len(ours)) == (theirs.offset, len(theirs)) and _buffers(ours) == _buffers(theirs):
            return True
    return left.equals(right)


def _buffers(array: pa.Array) -> list[tuple[int, int] | None]:
    """Where each of the array's buffers is, and how long (None: absent)."""
    return [None if b is None else (b.address, b.size) for b in array.buffers()]


def _beside(frame: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """``extra``'s columns beside ``frame``'s: its rows are known to be ``frame``'s, in order."""
    return pl.concat([frame, extra.drop("profile_id")], how="horizontal")


def attach_columns(frame: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """``frame`` left-joined with ``extra`` on profile_id (rows in ``frame`` order); no join when aligned."""
    if _aligned(frame, extra):
        return pl.concat([frame, extra.drop("profile_id")], how="horizontal")
    return frame.join(extra, on="profile_id", how="left", maintain_order="left")


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
    attributes: pl.DataFrame,
    classifiers: Sequence[Classifier],
    config: TagsConfig,
    early: Mapping[str, EarlyResult] | None = None,
) -> ClassifiedSnapshot:
    """Run the chain in order. ``early``: results computed ahead on the profile frame
    (:mod:`cdp.segments.classify.ahead`), used instead of running a classifier when its inputs are the same."""
    frame = attributes
    parts: list[pl.DataFrame] = []
    tag_frame = attributes.select("profile_id")
    specs: dict[str, TagSpec] = {}
    origin: dict[str, str] = {}
    for classifier in classifiers:
        ahead = early.get(classifier.name) if early is not None else None  # may wait for it (``pending``)
        result = ahead.classification if ahead is not None and ahead.valid_for(classifier, frame) else None
        if result is None:
            result = classifier.classify(frame, config)
        extra = result.attributes if result.attributes is not None and result.attributes.width > 1 else None
        new_tags = result.tag_frame if result.tag_frame is not None and result.tag_frame.width > 1 else None
        if extra is not None:
            clash = (set(extra.columns) - {"profile_id"}) & set(frame.columns)
            if clash:
                raise ConfigurationError(f"classifier {classifier.name!r} overwrites attributes {sorted(clash)}")
        if new_tags is not None:
            shared = (set(new_tags.columns) - {"profile_id"}) & set(tag_frame.columns)
            if shared:
                raise ConfigurationError(f"classifier {classifier.name!r} reuses tag columns {sorted(shared)}")
        on_rows = False  # extra and new_tags are on the snapshot's rows, in its order (checked)
        if extra is not None and new_tags is not None and _aligned(extra, new_tags):
            # Attributes and tag columns on the same rows: put both on the snapshot's rows with one join.
            renamed = {c: f"\x00{c}" for c in new_tags.columns if c != "profile_id"}
            both = attach_columns(
                frame.select("profile_id"),
                pl.concat([extra, new_tags.drop("profile_id").rename(renamed)], how="horizontal"),
            )
            extra, new_tags = (
                both.select(pl.exclude(renamed.values())),
                both.select("profile_id", *renamed.values()).rename({v: k for k, v in renamed.items()}),
            )
            on_rows = True
        if extra is not None:
            frame = _beside(frame, extra) if on_rows else attach_columns(frame, extra)
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
        held = set(result.tag_rows["tag"].unique().to_list()) if result.tag_rows.height else set()
        if new_tags is not None:
            held |= frame_tag_names(new_tags)
            tag_frame = _beside(tag_frame, new_tags) if on_rows else attach_columns(tag_frame, new_tags)
        unknown = held - specs.keys()
        if unknown:
            raise ConfigurationError(
                f"classifier {classifier.name!r} assigns tags missing from its catalogue: {sorted(unknown)[:5]}"
            )
        if result.tag_rows.height:
            parts.append(result.tag_rows.select(pl.col("profile_id").cast(pl.String), pl.col("tag").cast(pl.String)))
    tags = pl.concat(parts).unique() if parts else empty_tags()
    return ClassifiedSnapshot(frame, tags, specs, origin, tag_frame if tag_frame.width > 1 else None)
