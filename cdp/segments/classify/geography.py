"""Geography: world region, US census region, Chinese region and economic zone.

Reads ``country``, ``state`` and ``city`` of the profile (as the access layer
gives them to the classifier) and maps them through the bundled reference
tables in :mod:`cdp.segments.classify.geo_reference`. State and province
values arrive in several spellings (``CA`` / ``California``, ``广东`` /
``广东省`` / ``Guangdong``), all normalised here. Mapping runs once per
distinct (country, state, city), not once per person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from cdp.segments.classify import geo_reference as ref
from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

GEO_COLUMNS = (
    "world_region",
    "world_subregion",
    "us_state",
    "us_census_region",
    "us_census_division",
    "cn_province",
    "cn_region",
    "cn_zone",
)


def slug(value: str) -> str:
    return re.sub(r"[^\w\-]+", "_", value.strip().lower()).strip("_")


def us_state_code(state: str | None) -> str | None:
    """USPS code from a code or a full name (any case), else None."""
    if not state:
        return None
    cleaned = " ".join(state.split())
    if cleaned.upper() in ref.US_STATES:
        return cleaned.upper()
    return ref.US_STATE_NAMES.get(cleaned.lower().rstrip("."))


def _strip_cn_suffix(value: str) -> str:
    for suffix in ref.CN_SUFFIXES:
        if value.endswith(suffix) and len(value) > len(suffix):
            return value[: -len(suffix)]
    return value


def cn_province(state: str | None, city: str | None = None) -> str | None:
    """The short Han name of a provincial-level division, from Han (with or without suffix) or pinyin.

    The state is read first; the city only names a province when it is a
    municipality (北京, 上海, 天津, 重庆), which the demo often stores as a city.
    """
    for position, raw in enumerate((state, city)):
        if not raw:
            continue
        from_city = position == 1
        if not raw.isascii():
            short = _strip_cn_suffix("".join(raw.split()))
            if short in ref.CN_PROVINCES and (not from_city or short in ref.CN_MUNICIPALITIES):
                return short
            continue
        key = re.sub(
            r"\s+(province|sheng|shi|city|municipality|sar|autonomous region)$", "", " ".join(raw.lower().split())
        )
        province = ref.CN_PROVINCE_PINYIN.get(key)
        if province is not None and (not from_city or province in ref.CN_MUNICIPALITIES):
            return province
    return None


def cn_city(city: str | None) -> str | None:
    """The short Han name of a Pearl River Delta city (Han or pinyin), else None."""
    if not city:
        return None
    value = "".join(city.split())
    if not value.isascii():
        short = _strip_cn_suffix(value)
        return short if short in ref.PRD_CITIES else None
    lowered = value.lower().removesuffix("city")
    return next((han for han, pinyin in ref.PRD_CITIES.items() if pinyin == lowered), None)


def locate(country: str | None, state: str | None, city: str | None) -> dict[str, str | None]:
    """Every geography column for one (country, state, city)."""
    code = (country or "").strip().upper() or None
    out: dict[str, str | None] = dict.fromkeys(GEO_COLUMNS)
    if code in ref.COUNTRY_REGIONS:
        out["world_region"], out["world_subregion"] = ref.COUNTRY_REGIONS[code]
    if code == "US":
        state_code = us_state_code(state)
        if state_code is not None:
            out["us_state"] = state_code
            out["us_census_region"], out["us_census_division"] = ref.US_STATES[state_code]
    if code == "CN" or (code is None and state and not state.isascii()):
        province = cn_province(state, city)
        if province is not None:
            out["cn_province"] = province
            out["cn_region"] = ref.CN_PROVINCES[province]
            out["cn_zone"] = ref.CN_PROVINCE_ZONES.get(province)
            if province == "广东" and cn_city(city) is not None:
                out["cn_zone"] = "珠三角"
        if out["world_region"] is None and province is not None:
            out["world_region"], out["world_subregion"] = ref.COUNTRY_REGIONS["CN"]
    return out


def geography(attributes: pl.DataFrame) -> pl.DataFrame:
    """profile_id and the geography columns (null where unknown)."""
    present = [c for c in ("country", "state", "city") if c in attributes.columns]
    keys = attributes.select("profile_id", *[pl.col(c).cast(pl.String).alias(c) for c in present]).with_columns(
        *[pl.lit(None, dtype=pl.String).alias(c) for c in ("country", "state", "city") if c not in present]
    )
    distinct = keys.select("country", "state", "city").unique()
    rows = [{"country": c, "state": s, "city": t, **locate(c, s, t)} for c, s, t in distinct.iter_rows()]
    schema = {name: pl.String for name in ("country", "state", "city", *GEO_COLUMNS)}
    mapping = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    joined = keys.join(mapping, on=["country", "state", "city"], how="left", nulls_equal=True, maintain_order="left")
    return joined.select("profile_id", *GEO_COLUMNS)


_GEO_NAMES = (
    *{r for r, _ in ref.COUNTRY_REGIONS.values()},
    *ref.M49_SUBREGIONS,
    *{r for r, _ in ref.US_DIVISIONS.values()},
    *ref.US_DIVISIONS,
)


def geography_catalogue() -> tuple[TagSpec, ...]:
    regions = sorted({r for r, _ in ref.COUNTRY_REGIONS.values()})
    subregions = sorted(ref.M49_SUBREGIONS)
    us_regions = sorted({r for r, _ in ref.US_DIVISIONS.values()})
    return (
        *catalogue("region", [slug(r) for r in regions], "basic", "lives in {value} (UN M49 region)"),
        *catalogue("subregion", [slug(s) for s in subregions], "basic", "lives in {value} (UN M49 sub-region)"),
        *catalogue("us_region", [slug(r) for r in us_regions], "basic", "US census region {value}"),
        *catalogue("us_division", [slug(d) for d in ref.US_DIVISIONS], "basic", "US census division {value}"),
        *catalogue("cn_region", list(ref.CN_REGIONS), "basic", "China region {value}"),
        *catalogue("cn_zone", ["长三角", "珠三角", "京津冀", "成渝"], "basic", "China economic zone {value}"),
    )


@dataclass(frozen=True)
class GeographyClassifier:
    name: str = "geography"
    # Profile columns only: may run while the event attributes are computed.
    reads: ClassVar[tuple[str, ...]] = ("country", "state", "city")
    order: int = 30

    def classify(self, attributes: pl.DataFrame, config: TagsConfig) -> Classification:
        if not config.geography.enabled or "country" not in attributes.columns:
            return Classification()
        geo = geography(attributes)
        slugs = {name: slug(name) for name in _GEO_NAMES}
        slugged = geo.with_columns(
            *[
                pl.col(c).replace_strict(slugs, default=None, return_dtype=pl.String).alias(f"_{c}")
                for c in ("world_region", "world_subregion", "us_census_region", "us_census_division")
            ]
        )
        tags = slugged.select(
            "profile_id",
            pl.col("_world_region").alias("region"),
            pl.col("_world_subregion").alias("subregion"),
            pl.col("_us_census_region").alias("us_region"),
            pl.col("_us_census_division").alias("us_division"),
            "cn_region",
            "cn_zone",
        )
        return Classification(attributes=geo, tag_frame=tags, catalogue=geography_catalogue())
