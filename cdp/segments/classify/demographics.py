"""Demographics: age band, gender, and B2B industry and company size where present.

Only declared or generalised attributes are used: the classifier never sees a
birth date, only the age band the access layer derives from it. Gender
spellings from the sources (``f``, ``woman``, ``Female``…) are folded to
female / male / non-binary; anything else is left untagged rather than
guessed. B2B columns (``industry``, ``company_size``) become tags only when
a source provides them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = {
    "f": "female",
    "female": "female",
    "woman": "female",
    "w": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "nonbinary": "non_binary",
    "non-binary": "non_binary",
    "non_binary": "non_binary",
    "nb": "non_binary",
    "x": "non_binary",
}
GENDER = pl.Enum(sorted(set(GENDERS.values())))  # the columns' types: a byte a row
AGE_GROUP = pl.Enum(AGE_BANDS)
# EU SME definition (employees).
COMPANY_SIZES = (("micro", 10), ("small", 50), ("medium", 250), ("large", None))


def company_size_band(value: object) -> str | None:
    """micro (<10) | small (<50) | medium (<250) | large, from a head count or a declared band."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in {name for name, _ in COMPANY_SIZES}:
        return text
    numbers = [int(n) for n in re.findall(r"\d+", text.replace(",", ""))]
    if not numbers:
        return None
    count = numbers[0]
    for name, limit in COMPANY_SIZES:
        if limit is None or count < limit:
            return name
    return None  # pragma: no cover - the last band has no limit


def industry_slug(value: object) -> str | None:
    if value is None:
        return None
    text = re.sub(r"[^\w]+", "_", str(value).strip().lower()).strip("_")
    return text[:60] or None


def demographics(attributes: pl.DataFrame) -> pl.DataFrame:
    columns: list[pl.Expr] = []
    if "gender" in attributes.columns:
        # Each distinct spelling normalised once (a few), then looked up per row (a million).
        declared = attributes["gender"].cast(pl.String)
        spelled = {v: GENDERS.get(v.strip().lower()) for v in declared.drop_nulls().unique().to_list()}
        columns.append(pl.lit(declared.replace_strict(spelled, default=None, return_dtype=GENDER)).alias("gender_norm"))
    if "age_band" in attributes.columns:
        columns.append(
            pl.col("age_band").cast(pl.String).cast(AGE_GROUP, strict=False).alias("age_group")  # others: null
        )
    if "industry" in attributes.columns:
        columns.append(pl.col("industry").map_batches(_industry_batch, return_dtype=pl.String).alias("industry_norm"))
    if "company_size" in attributes.columns:
        columns.append(
            pl.col("company_size").map_batches(_company_size_batch, return_dtype=pl.String).alias("company_size_band")
        )
    return attributes.select("profile_id", *columns)


def _industry_batch(series: pl.Series) -> pl.Series:
    return pl.Series([industry_slug(v) for v in series.to_list()], dtype=pl.String)


def _company_size_batch(series: pl.Series) -> pl.Series:
    return pl.Series([company_size_band(v) for v in series.to_list()], dtype=pl.String)


@dataclass(frozen=True)
class DemographicsClassifier:
    name: str = "demographics"
    # Profile columns only: may run while the event attributes are computed.
    reads: ClassVar[tuple[str, ...]] = ("gender", "age_band", "industry", "company_size")
    order: int = 31

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if not config.demographics.enabled:
            return Classification()
        frame = demographics(attributes)
        if frame.width == 1:
            return Classification()
        prefixes = {"age_group": "age", "gender_norm": "gender", "industry_norm": "industry"}
        prefixes["company_size_band"] = "company_size"
        tags = frame.select("profile_id", *[pl.col(c).alias(p) for c, p in prefixes.items() if c in frame.columns])
        specs: tuple[TagSpec, ...] = (
            *catalogue("age", AGE_BANDS, "basic", "age band {value}"),
            *catalogue("gender", sorted(set(GENDERS.values())), "basic", "declared gender {value}"),
            *catalogue("company_size", [n for n, _ in COMPANY_SIZES], "basic", "company size {value} (employees)"),
        )
        if "industry_norm" in frame.columns:
            industries = sorted(frame["industry_norm"].drop_nulls().unique().to_list())
            specs += catalogue("industry", industries, "basic", "industry {value}")
        return Classification(attributes=frame, tag_frame=tags, catalogue=specs)
