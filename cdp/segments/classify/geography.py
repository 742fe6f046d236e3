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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from cdp.segments.classify import geo_reference as ref
from cdp.segments.classify.base import Classification, TagSpec, catalogue
from cdp.segments.config import TagsConfig

# Tag prefix -> the geography column it tags, and whether by its slug (the English names) or as it is.
TAG_COLUMNS = {
    "region": ("world_region", True),
    "subregion": ("world_subregion", True),
    "us_region": ("us_census_region", True),
    "us_division": ("us_census_division", True),
    "cn_region": ("cn_region", False),
    "cn_zone": ("cn_zone", False),
}
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


def _codes(column: pl.Series | None) -> tuple[list[str | None], np.ndarray]:
    """(the column's distinct values, sorted, then None; each row's position in that list)."""
    if column is None:
        return [None], np.zeros(0, dtype=np.uint32)
    text = column.cast(pl.String)
    labels = text.drop_nulls().unique().sort()
    codes = text.cast(pl.Enum(labels)).to_physical().cast(pl.UInt32).fill_null(labels.len())
    return [*labels.to_list(), None], codes.to_numpy()


def _located(attributes: pl.DataFrame) -> tuple[list[dict[str, str | None]], pl.Series]:
    """(:func:`locate` of every distinct (country, state, city); per row, the position of its own).

    The three columns are coded by their few distinct values and combined into one integer per
    row, so the mapping runs once per combination and the rows take it by position: no string
    hashing or join of a million rows.
    """
    parts = [_codes(attributes[c] if c in attributes.columns else None) for c in ("country", "state", "city")]
    combined = np.zeros(attributes.height, dtype=np.uint64)
    for values, codes in parts:
        combined *= len(values)
        if codes.size:
            combined += codes
    distinct = pl.Series("_key", combined).unique().sort().to_numpy()
    places: list[dict[str, str | None]] = []
    for key in distinct.tolist():
        picked: list[str | None] = []
        rest = key
        for values, _ in reversed(parts):
            rest, at = divmod(rest, len(values))
            picked.append(values[at])
        city, state, country = picked
        places.append(locate(country, state, city))
    span = int(np.prod([len(values) for values, _ in parts]))
    if span <= 1 << 20:  # few combinations possible: a table from combination to place
        table = np.zeros(span, dtype=np.uint32)
        table[distinct] = np.arange(distinct.size, dtype=np.uint32)
        return places, pl.Series("_place", table[combined])
    return places, pl.Series("_place", np.searchsorted(distinct, combined).astype(np.uint32))


# Every value a geography column can hold (the reference tables'): its Enum's categories, so the
# columns' types are the same whatever people a snapshot holds.
GEO_VALUES: dict[str, frozenset[str]] = {
    "world_region": frozenset(r for r, _ in ref.COUNTRY_REGIONS.values()),
    "world_subregion": frozenset(ref.M49_SUBREGIONS) | {s for _, s in ref.COUNTRY_REGIONS.values()},
    "us_state": frozenset(ref.US_STATES),
    "us_census_region": frozenset(r for r, _ in ref.US_STATES.values()),
    "us_census_division": frozenset(d for _, d in ref.US_STATES.values()),
    "cn_province": frozenset(ref.CN_PROVINCES),
    "cn_region": frozenset(ref.CN_REGIONS),
    "cn_zone": frozenset(ref.CN_PROVINCE_ZONES.values()) | {"珠三角"},
}


def _column(name: str, per_place: Sequence[str | None], rows: pl.Series, values: frozenset[str]) -> pl.Series:
    """One value per distinct place, given to each row by its place's position: an Enum of
    ``values`` (a byte a row, not a string view of sixteen)."""
    labels = sorted(values | {v for v in per_place if v is not None})
    return pl.Series(name, per_place, dtype=pl.Enum(labels)).gather(rows)


def geography(attributes: pl.DataFrame) -> pl.DataFrame:
    """profile_id and the geography columns (null where unknown), as Enums of their possible values."""
    return _geography_and_tags(attributes)[0]


def _geography_and_tags(attributes: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(:func:`geography`; its tag columns, ``TAG_COLUMNS``), on the rows of ``attributes``."""
    places, rows = _located(attributes)
    geo = pl.DataFrame(
        [attributes["profile_id"], *(_column(c, [p[c] for p in places], rows, GEO_VALUES[c]) for c in GEO_COLUMNS)]
    )
    slugs = {name: slug(name) for name in _GEO_NAMES}
    tags = pl.DataFrame(
        [
            attributes["profile_id"],
            *(
                _column(
                    prefix,
                    [slugs.get(p[column] or "") if slugged else p[column] for p in places],
                    rows,
                    frozenset(slug(v) for v in GEO_VALUES[column]) if slugged else GEO_VALUES[column],
                )
                for prefix, (column, slugged) in TAG_COLUMNS.items()
            ),
        ]
    )
    return geo, tags


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
        geo, tags = _geography_and_tags(attributes)
        return Classification(attributes=geo, tag_frame=tags, catalogue=geography_catalogue())
