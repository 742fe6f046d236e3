"""The bundled geographic reference tables and the geography classifier."""

from __future__ import annotations

import phonenumbers
import polars as pl
import pytest

from cdp.segments.classify import geo_reference as ref
from cdp.segments.classify.geography import (
    GEO_COLUMNS,
    GeographyClassifier,
    cn_province,
    geography,
    locate,
    us_state_code,
)
from cdp.segments.config import TagsConfig


def test_every_country_code_appears_once() -> None:
    codes = [c for _, (_, listed) in ref.M49_SUBREGIONS.items() for c in listed.split()]
    assert len(codes) == len(set(codes)) == len(ref.COUNTRY_REGIONS) == 250  # ISO 3166-1 (249) + XK


def test_every_region_phonenumbers_knows_is_mapped() -> None:
    # AC (Ascension) and TA (Tristan da Cunha) are parts of SH, not ISO 3166-1 countries.
    missing = sorted(set(phonenumbers.SUPPORTED_REGIONS) - set(ref.COUNTRY_REGIONS) - {"AC", "TA"})
    assert missing == []


@pytest.mark.parametrize(
    ("code", "region", "subregion"),
    [
        ("US", "Americas", "Northern America"),
        ("MX", "Americas", "Central America"),
        ("BR", "Americas", "South America"),
        ("CN", "Asia", "Eastern Asia"),
        ("SG", "Asia", "South-eastern Asia"),
        ("IN", "Asia", "Southern Asia"),
        ("TR", "Asia", "Western Asia"),
        ("GB", "Europe", "Northern Europe"),
        ("DE", "Europe", "Western Europe"),
        ("FR", "Europe", "Western Europe"),
        ("PL", "Europe", "Eastern Europe"),
        ("ES", "Europe", "Southern Europe"),
        ("EG", "Africa", "Northern Africa"),
        ("NG", "Africa", "Western Africa"),
        ("ZA", "Africa", "Southern Africa"),
        ("AU", "Oceania", "Australia and New Zealand"),
        ("FJ", "Oceania", "Melanesia"),
    ],
)
def test_known_countries(code: str, region: str, subregion: str) -> None:
    assert ref.COUNTRY_REGIONS[code] == (region, subregion)


def test_us_states_and_census_regions() -> None:
    assert len(ref.US_STATES) == 51  # 50 states and DC
    assert {r for r, _ in ref.US_STATES.values()} == {"Northeast", "Midwest", "South", "West"}
    assert ref.US_STATES["CA"] == ("West", "Pacific")
    assert ref.US_STATES["NY"] == ("Northeast", "Middle Atlantic")
    assert ref.US_STATES["TX"] == ("South", "West South Central")
    assert ref.US_STATES["IL"] == ("Midwest", "East North Central")
    assert ref.US_STATES["DC"] == ("South", "South Atlantic")
    assert set(ref.US_STATE_NAMES.values()) == set(ref.US_STATES)


def test_chinese_provinces_regions_and_zones() -> None:
    assert len(ref.CN_PROVINCES) == 34
    assert set(ref.CN_PROVINCES.values()) == {"华北", "东北", "华东", "华中", "华南", "西南", "西北"}
    assert ref.CN_PROVINCES["上海"] == "华东" and ref.CN_PROVINCES["广东"] == "华南"
    assert ref.CN_PROVINCES["北京"] == "华北" and ref.CN_PROVINCES["四川"] == "西南"
    assert (
        ref.CN_PROVINCES["湖北"] == "华中" and ref.CN_PROVINCES["辽宁"] == "东北" and ref.CN_PROVINCES["陕西"] == "西北"
    )
    assert set(ref.CN_PROVINCE_PINYIN.values()) == set(ref.CN_PROVINCES)
    assert set(ref.CN_PROVINCE_ZONES.values()) == {"长三角", "京津冀", "成渝"}
    assert len(ref.PRD_CITIES) == 9


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("CA", "CA"),
        ("ca", "CA"),
        ("California", "CA"),
        ("new  york", "NY"),
        ("Washington D.C.", "DC"),
        ("Narnia", None),
    ],
)
def test_us_state_spellings(raw: str, code: str | None) -> None:
    assert us_state_code(raw) == code


@pytest.mark.parametrize(
    ("state", "city", "province"),
    [
        ("广东", None, "广东"),
        ("广东省", None, "广东"),
        ("Guangdong", None, "广东"),
        ("Shaanxi", None, "陕西"),
        ("Shanxi", None, "山西"),
        ("新疆维吾尔自治区", None, "新疆"),
        (None, "上海市", "上海"),  # a municipality stored as the city
        (None, "Chongqing", "重庆"),
        (None, "深圳", None),  # a city that is not a province says nothing on its own
        ("Atlantis", None, None),
    ],
)
def test_chinese_province_spellings(state: str | None, city: str | None, province: str | None) -> None:
    assert cn_province(state, city) == province


def test_locate_combines_every_level() -> None:
    assert locate("CN", "广东省", "深圳市") == {
        "world_region": "Asia",
        "world_subregion": "Eastern Asia",
        "us_state": None,
        "us_census_region": None,
        "us_census_division": None,
        "cn_province": "广东",
        "cn_region": "华南",
        "cn_zone": "珠三角",
    }
    assert locate("CN", "广东", "汕头")["cn_zone"] is None  # 广东 outside the Pearl River Delta
    assert locate("CN", "Jiangsu", None)["cn_zone"] == "长三角"
    assert locate("us", "tx", "Austin")["us_census_division"] == "West South Central"
    assert locate(None, None, None)["world_region"] is None


def test_classifier_tags_people_once_per_level() -> None:
    frame = pl.DataFrame(
        {
            "profile_id": ["p1", "p2", "p3", "p4"],
            "country": ["CN", "US", "DE", None],
            "state": ["上海", "California", None, None],
            "city": [None, "Los Angeles", "Berlin", None],
        }
    )
    result = GeographyClassifier().classify(frame, TagsConfig())
    tags = sorted(result.tags.iter_rows())
    assert tags == [
        ("p1", "cn_region:华东"),
        ("p1", "cn_zone:长三角"),
        ("p1", "region:asia"),
        ("p1", "subregion:eastern_asia"),
        ("p2", "region:americas"),
        ("p2", "subregion:northern_america"),
        ("p2", "us_division:pacific"),
        ("p2", "us_region:west"),
        ("p3", "region:europe"),
        ("p3", "subregion:western_europe"),
    ]
    names = {s.name for s in result.catalogue}
    assert {t for _, t in tags} <= names and "cn_zone:珠三角" in names
    assert all(s.taxonomy == "basic" for s in result.catalogue)
    assert geography(frame)["cn_region"].to_list() == ["华东", None, None, None]


@pytest.mark.parametrize("spread", [3, 1_100])  # few combinations (a table), and more than a table takes
def test_geography_of_every_row_is_locate_of_its_values(spread: int) -> None:
    states = ["广东省", "上海", "CA", "tx", "Jiangsu", None, *[f"S{i}" for i in range(spread)]]
    cities = ["深圳市", "Austin", None, *[f"C{i}" for i in range(spread)]]
    rows = [
        (f"p{i}", ["CN", "US", "de", None][i % 4], states[i % len(states)], cities[(i // 3) % len(cities)])
        for i in range(max(60, spread * 2))
    ]
    frame = pl.DataFrame(rows, schema=["profile_id", "country", "state", "city"], orient="row")
    geo = geography(frame)
    assert geo["profile_id"].to_list() == frame["profile_id"].to_list()
    assert all(isinstance(geo.schema[c], pl.Enum) for c in GEO_COLUMNS)  # a byte a row, not a string
    expected = [locate(c, s, t) for _, c, s, t in rows]
    assert geo.select(GEO_COLUMNS).to_dicts() == expected


def test_geography_columns_have_the_same_types_whatever_people_a_snapshot_holds() -> None:
    """Enums of every value the reference tables give, not of the values found: snapshots of other
    people (or none) give columns of one type, which can be put together."""
    some = GeographyClassifier().classify(
        pl.DataFrame({"profile_id": ["p1"], "country": ["CN"], "state": ["广东"], "city": ["深圳"]}), TagsConfig()
    )
    other = GeographyClassifier().classify(
        pl.DataFrame(
            {"profile_id": ["p2"], "country": ["US"], "state": ["TX"], "city": [None]},
            schema_overrides={"city": pl.String},
        ),
        TagsConfig(),
    )
    assert some.attributes is not None and other.attributes is not None
    assert some.attributes.schema == other.attributes.schema
    assert some.tag_frame is not None and other.tag_frame is not None
    assert some.tag_frame.schema == other.tag_frame.schema
    both = pl.concat([some.attributes, other.attributes])
    assert both["cn_zone"].to_list() == ["珠三角", None] and both["us_census_region"].to_list() == [None, "South"]
