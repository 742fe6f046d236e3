"""Tests for cdp.identity.normalize: typical inputs, hostile inputs, and cross-script equivalence."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pluggy
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdp import hookspecs
from cdp.hookspecs import PluginContext
from cdp.identity import default_normalizers
from cdp.identity._names import _SUFFIXES, _TITLES
from cdp.identity._nicknames import NICKNAMES, nickname_pairs
from cdp.identity.normalize import (
    MAX_INPUT_CHARS,
    NormalizedEmail,
    NormalizedName,
    name_match_keys,
    normalize_city,
    normalize_country,
    normalize_date_of_birth,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    normalize_street,
)
from cdp.settings import Settings

TODAY = date(2024, 6, 1)

# Every normaliser, called the way the pipeline calls it, with the type it may return.
NORMALISERS: dict[str, tuple[Callable[[Any], object], tuple[type, ...]]] = {
    "email": (normalize_email, (NormalizedEmail,)),
    "phone": (normalize_phone, (str,)),
    "phone_gb": (lambda v: normalize_phone(v, "GB"), (str,)),
    "phone_no_region": (lambda v: normalize_phone(v, None), (str,)),
    "name_given": (normalize_name, (NormalizedName,)),
    "name_family": (lambda v: normalize_name(family=v), (NormalizedName,)),
    "name_full": (lambda v: normalize_name(full=v), (NormalizedName,)),
    "name_full_cn": (lambda v: normalize_name(full=v, country="CN"), (NormalizedName,)),
    "name_keys": (lambda v: name_match_keys(n) if (n := normalize_name(full=v)) else None, (tuple,)),
    "date_of_birth": (lambda v: normalize_date_of_birth(v, today=TODAY), (date,)),
    "date_of_birth_de": (lambda v: normalize_date_of_birth(v, country="DE", today=TODAY), (date,)),
    "postcode": (normalize_postcode, (str,)),
    "postcode_us": (lambda v: normalize_postcode(v, "US"), (str,)),
    "postcode_gb": (lambda v: normalize_postcode(v, "GB"), (str,)),
    "city": (normalize_city, (str,)),
    "street": (normalize_street, (str,)),
    "country": (normalize_country, (str,)),
}

HOSTILE: list[object] = [
    None, 123, -1, 0, True, 3.14, float("nan"), [], ["john@example.com"], {}, ("a", "b"), b"john@example.com", object(),
    "", "   ", "\t\n\r", "😀😀", "\x00", "\x00" * 300, "\u200b\u200d\ufeff", "\ud800",  # a lone surrogate
    "x" * 10_240, "王" * 10_240, "@" * 10_240, "1" * 10_240, "-" * 10_240, "'" * 10_240, "john@example.com " * 700,
    "- ' , . ·", "市", "年月日", "+", "00", "mailto:", "<>", "@", "a@", "@b.com",
]  # fmt: skip

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
    st.binary(),
    st.lists(st.text()),
    st.dictionaries(st.text(), st.text()),
    st.dates(),
    st.datetimes(),
    st.tuples(st.text(), st.integers()),
    # Not st.from_type(object): it instantiates arbitrary classes of whatever is imported,
    # some of which emit DeprecationWarnings that -W error turns into unrelated failures.
    st.sampled_from([object(), Exception("x"), int, range(3), frozenset({"a"}), 1j, bytearray(b"@"), ...]),
)


def rows(table: str) -> list[tuple[str | None, ...]]:
    """Parse a ``a | b | c`` test table; ``-`` stands for None. Cells are stripped."""
    return [
        tuple(None if cell.strip() == "-" else cell.strip() for cell in line.split("|"))
        for line in table.strip().splitlines()
    ]


def cells(table: str) -> list[str | None]:
    """Every cell of a ``rows`` table, flattened."""
    return [cell for row in rows(table) for cell in row]


# --------------------------------------------------------------------------- totality


@pytest.mark.parametrize(
    "value", HOSTILE, ids=lambda v: type(v).__name__ + str(len(v) if hasattr(v, "__len__") else "")
)
@pytest.mark.parametrize("name", sorted(NORMALISERS))
def test_hostile_inputs_never_raise(name: str, value: object) -> None:
    func, types = NORMALISERS[name]
    result = func(value)
    assert result is None or isinstance(result, types)


@pytest.mark.parametrize("value", [None, 123, [], "", "   ", "😀😀", "\x00", "-'.", ["a", "b"], b"ann@example.com"])
def test_obvious_garbage_gives_none(value: object) -> None:
    assert normalize_email(value) is None
    assert normalize_phone(value) is None
    assert normalize_name(value, value, value) is None
    assert normalize_date_of_birth(value, today=TODAY) is None
    assert normalize_postcode(value) is None
    assert normalize_city(value) is None
    assert normalize_country(value) is None


def test_ten_kilobyte_strings_give_none_or_a_bounded_result() -> None:
    assert normalize_email("a" * 10_240 + "@example.com") is None
    assert normalize_phone("1" * 10_240) is None
    assert normalize_date_of_birth("1985-03-04" + " " * 10_240, today=TODAY) == date(1985, 3, 4)
    city = normalize_city("x" * 10_240)
    assert city == "x" * MAX_INPUT_CHARS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile_values)
def test_property_no_normaliser_raises(value: object) -> None:
    for func, types in NORMALISERS.values():
        result = func(value)
        assert result is None or isinstance(result, types)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=60), region=hostile_values)
def test_property_hostile_region_and_country_arguments(value: str, region: Any) -> None:
    normalize_phone(value, region)
    normalize_date_of_birth(value, country=region, today=TODAY)
    normalize_date_of_birth(value, country="US", today=region)
    normalize_postcode(value, region)
    normalize_name(full=value, country=region)


def test_long_strings_are_truncated_before_work() -> None:
    name = normalize_name(full="ab " * 5000)
    assert name is not None
    assert len(name.tokens) <= MAX_INPUT_CHARS // 3 + 1
    start = time.perf_counter()
    for func, _ in NORMALISERS.values():
        func("é" * 100_000)
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------- email


def test_email_lowercases_and_strips() -> None:
    result = normalize_email("  John.Smith@Example.COM \n")
    assert result == NormalizedEmail(
        original="John.Smith@Example.COM", address="john.smith@example.com", match_key="john.smith@example.com"
    )


def test_email_plus_tag_removed_from_match_key_only() -> None:
    result = normalize_email("jane+newsletter@example.org")
    assert result is not None
    assert result.address == "jane+newsletter@example.org"
    assert result.match_key == "jane@example.org"


@pytest.mark.parametrize(
    "value",
    ["john.smith@gmail.com", "JohnSmith@gmail.com", "j.o.h.n.smith+shop@googlemail.com", "john.smith+x+y@GMAIL.COM"],
)
def test_gmail_dots_plus_tags_and_googlemail_share_a_match_key(value: str) -> None:
    result = normalize_email(value)
    assert result is not None
    assert result.match_key == "johnsmith@gmail.com"


def test_dots_are_kept_outside_gmail() -> None:
    result = normalize_email("john.smith@example.com")
    assert result is not None
    assert result.match_key == "john.smith@example.com"


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("mailto:Ann@Example.com", "ann@example.com"),
        ("<ann@example.com>", "ann@example.com"),
        ("ann@example.com.", "ann@example.com"),
        ("ann@münchen.de", "ann@xn--mnchen-3ya.de"),
        ("o'brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_email_accepted_forms(value: str, address: str) -> None:
    result = normalize_email(value)
    assert result is not None
    assert result.address == address


@pytest.mark.parametrize(
    "value",
    [
        *cells("""
        plainaddress | a@b | @example.com | ann@ | .ann@example.com | ann.@example.com | an..n@example.com
        ann@-example.com | ann@example-.com | ann@example..com | ann@example.c | ann@example.123 | a@@example.com
        a@b@example.com | (ann)@example.com | <ann>@example.com
        """),
        "a b@example.com",
        "ann@exa mple.com",
        "ann\x00@example.com",
        "ann@exam\x00ple.com",
        "a" * 65 + "@example.com",
    ],
)
def test_implausible_emails_are_rejected(value: str) -> None:
    assert normalize_email(value) is None


def test_email_normalisation_is_idempotent_on_the_address() -> None:
    first = normalize_email("X.Y+z@GoogleMail.com")
    assert first is not None
    second = normalize_email(first.address)
    assert second is not None
    assert second.address == first.address
    assert second.match_key == first.match_key


# --------------------------------------------------------------------------- phone


PHONES = """
(415) 555-0100        | US | +14155550100
415.555.0100          | US | +14155550100
+1 415 555 0100       | -  | +14155550100
1-415-555-0100        | US | +14155550100
011 44 20 7946 0958   | US | +442079460958
+44 20 7946 0958      | US | +442079460958
020 7946 0958         | GB | +442079460958
0044 20 7946 0958     | US | +442079460958
+44 (0)20 7946 0958   | US | +442079460958
07700 900123          | GB | +447700900123
030 123456            | DE | +4930123456
0151 12345678         | DE | +4915112345678
+49 (0)30 123456      | US | +4930123456
0049 30 123456        | GB | +4930123456
138 0013 8000         | CN | +8613800138000
00 86 138 0013 8000   | US | +8613800138000
+86 10 1234 5678      | US | +861012345678
４１５５５５０１００  | US | +14155550100
"""


@pytest.mark.parametrize(("value", "region", "expected"), [*rows(PHONES), (4155550100, "US", "+14155550100")])
def test_phone_formats(value: object, region: str | None, expected: str) -> None:
    assert normalize_phone(value, region) == expected


@pytest.mark.parametrize("region", ["Germany", "deu", "de", "Deutschland"])
def test_phone_region_may_be_a_country_name(region: str) -> None:
    assert normalize_phone("030 123456", region) == "+4930123456"


def test_phone_default_region_is_us() -> None:
    assert normalize_phone("415 555 0100") == "+14155550100"


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("123", "US"),
        ("415 555 0100", None),
        ("415 555 0100", "XX"),
        ("+999 1234", "US"),
        ("call me", "US"),
        (True, "US"),
    ],
)
def test_impossible_phone_numbers_are_none(value: object, region: str | None) -> None:
    assert normalize_phone(value, region) is None


def test_phone_is_idempotent() -> None:
    assert normalize_phone("+442079460958", "US") == "+442079460958"


# --------------------------------------------------------------------------- names


NAME_SPLITS = """
John Smith                | john     | smith         | john      | latin | js
Smith, John               | john     | smith         | john      | latin | js
Dr. Robert  J. Smith, Jr. | robert j | smith         | robert j  | latin | rjs
Mr Robert J Smith III     | robert j | smith         | robert j  | latin | rjs
Mary-Ann O'Brien          | mary ann | obrien        | mary anne | latin | mao
Mary Ann OBrien           | mary ann | obrien        | mary anne | latin | mao
José Núñez-García         | jose     | nunez garcia  | jose      | latin | jng
Ludwig van Beethoven      | ludwig   | van beethoven | ludwig    | latin | lvb
Bob Smith                 | bob      | smith         | robert    | latin | bs
Mike Chen                 | mike     | chen          | michael   | latin | mc
Madonna                   | madonna  |               | madonna   | latin | m
Иван Петров               | иван     | петров        | иван      | other | ип
Wang Xiao Ming            | xiaoming | wang          | xiaoming  | latin | xw
Xiao-Ming Wang            | xiaoming | wang          | xiaoming  | latin | xw
Xiaoming Wang             | xiaoming | wang          | xiaoming  | latin | xw
Lyu Bo                    | bo       | lu            | bo        | latin | bl
王伟                      | wei      | wang          | wei       | han   | ww
王 伟                     | wei      | wang          | wei       | han   | ww
王小明                    | xiaoming | wang          | xiaoming  | han   | xw
欧阳娜娜                  | nana     | ouyang        | nana      | han   | no
歐陽娜娜                  | nana     | ouyang        | nana      | han   | no
司马光                    | guang    | sima          | guang     | han   | gs
诸葛亮                    | liang    | zhuge         | liang     | han   | lz
上官婉儿                  | waner    | shangguan     | waner     | han   | ws
曾国藩                    | guofan   | zeng          | guofan    | han   | gz
单田芳                    | tianfang | shan          | tianfang  | han   | ts
吕波                      | bo       | lu            | bo        | han   | bl
约翰·史密斯               | yuehan   | shimisi       | yuehan    | han   | ys
"""


@pytest.mark.parametrize(("full", "given", "family", "canonical", "script", "initials"), rows(NAME_SPLITS))
def test_full_name_splitting(full: str, given: str, family: str, canonical: str, script: str, initials: str) -> None:
    """Titles/suffixes go, apostrophes join, hyphens split, particles and hyphenated names stay in the
    family name, Han names are family-first with compound surnames and surname readings, pinyin order
    is detected, and a middle-dot Han name is a transliterated given-name-first name."""
    name = normalize_name(full=full)
    assert name is not None
    assert (name.given, name.family, name.given_canonical, name.script, name.initials) == (
        given,
        family,
        canonical,
        script,
        initials,
    )


def test_explicit_parts_win_over_full() -> None:
    name = normalize_name("Robert", "Smith", "Somebody Else")
    assert name is not None
    assert (name.given, name.family, name.initials) == ("robert", "smith", "rs")


def test_full_is_used_when_parts_are_unusable() -> None:
    name = normalize_name("😀", 42, "Ann Lee")
    assert name is not None
    assert (name.given, name.family) == ("ann", "lee")


def test_accents_casefold_and_special_letters() -> None:
    name = normalize_name("JOSÉ", "Groß-Øster")
    assert name is not None
    assert (name.given, name.family) == ("jose", "gross oster")


def test_nicknames_resolve_to_the_same_canonical_name() -> None:
    bob, robert = normalize_name(full="Bob Smith"), normalize_name(full="Robert Smith")
    assert bob is not None and robert is not None
    assert bob.given == "bob"
    assert bob.given_canonical == robert.given_canonical == "robert"
    assert set(name_match_keys(bob)) & set(name_match_keys(robert))


@pytest.mark.parametrize(
    ("nick", "canonical"),
    [("Bill", "william"), ("Peggy", "margaret"), ("Sepp", "joseph"), ("Pepe", "jose"), ("Paco", "francisco")],
)
def test_nickname_examples(nick: str, canonical: str) -> None:
    name = normalize_name(given=nick)
    assert name is not None
    assert name.given_canonical == canonical


def test_unknown_given_name_is_its_own_canonical() -> None:
    name = normalize_name("Zebulon", "Pike")
    assert name is not None
    assert name.given_canonical == name.given == "zebulon"


def test_nickname_table_is_consistent() -> None:
    pairs = nickname_pairs()
    canonicals: dict[str, set[str]] = defaultdict(set)
    for nick, canonical in pairs:
        canonicals[nick].add(canonical)
    assert {n: c for n, c in canonicals.items() if len(c) > 1} == {}
    assert not set(NICKNAMES) & set(NICKNAMES.values()), "a canonical name must not itself be a nickname"
    assert all(k.isascii() and k.isalpha() and k.islower() for k in NICKNAMES)
    assert len(NICKNAMES) >= 300


@pytest.mark.parametrize("variant", ["Wang Wei", "Wei Wang", "WANG Wei", "Wang, Wei", "wei wang"])
def test_han_and_pinyin_forms_share_tokens(variant: str) -> None:
    han, latin = normalize_name(full="王伟"), normalize_name(full=variant)
    assert han is not None and latin is not None
    assert latin.tokens == han.tokens == ("wang", "wei")
    assert latin.script == "latin"


def test_country_cn_decides_ambiguous_pinyin_order() -> None:
    cn = normalize_name(full="Ning Ze", country="CN")
    elsewhere = normalize_name(full="Ning Ze", country="US")
    assert cn is not None and elsewhere is not None
    assert cn.family == "ning"
    assert elsewhere.family == "ze"
    assert cn.tokens == elsewhere.tokens


def test_explicit_pinyin_parts_join_like_han() -> None:
    latin = normalize_name(given="Xiao Ming", family="Wang")
    mixed = normalize_name(given="小明", family="Wang")
    han = normalize_name(full="王小明")
    assert latin is not None and mixed is not None and han is not None
    assert latin.tokens == mixed.tokens == han.tokens
    assert latin.given == han.given == "xiaoming"


def test_single_token_name_has_only_a_token_key() -> None:
    name = normalize_name(full="Madonna")
    assert name is not None
    assert name_match_keys(name) == ("tk:madonna",)


def test_name_match_keys() -> None:
    name = normalize_name(full="Bob Smith")
    assert name is not None
    assert name_match_keys(name) == (
        "fg:smith|robert",
        "fi:smith|r",
        "fi:smith|b",
        "tk:bob smith",
        "ck:robert smith",
    )
    reversed_order = normalize_name(full="Smith Bob")
    assert reversed_order is not None
    assert "ck:robert smith" in name_match_keys(reversed_order)


# --------------------------------------------------------------------------- dates of birth


DATES_OF_4_MARCH_1985 = """
1985-03-04 | 1985/3/4 | 1985.03.04 | 19850304 | 1985-03-04T10:30:00Z | 1985年3月4日 | １９８５年３月４日 | 04.03.1985
4 March 1985 | March 4, 1985 | Mar 4 1985 | 4th Mar 1985 | Monday, March 4th, 1985 | 4-Mar-1985
4. März 1985 | 4 mars 1985 | 4 de marzo de 1985
"""


@pytest.mark.parametrize(
    "value",
    [
        *(cell for row in rows(DATES_OF_4_MARCH_1985) for cell in row),
        date(1985, 3, 4),
        datetime(1985, 3, 4, 23, tzinfo=UTC),
    ],
)
def test_date_formats(value: object) -> None:
    assert normalize_date_of_birth(value, country="FR", today=TODAY) == date(1985, 3, 4)


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        (None, date(1985, 3, 4)),
        ("US", date(1985, 3, 4)),
        ("United States", date(1985, 3, 4)),
        ("GB", date(1985, 4, 3)),
        ("DE", date(1985, 4, 3)),
        ("Deutschland", date(1985, 4, 3)),
        ("CN", date(1985, 4, 3)),
    ],
)
def test_ambiguous_slash_dates_follow_the_country(country: str | None, expected: date) -> None:
    assert normalize_date_of_birth("03/04/1985", country=country, today=TODAY) == expected
    assert normalize_date_of_birth("03-04-1985", country=country, today=TODAY) == expected


def test_unambiguous_day_first_dates_ignore_the_country() -> None:
    assert normalize_date_of_birth("13/04/1985", country="US", today=TODAY) == date(1985, 4, 13)
    assert normalize_date_of_birth("04/13/1985", country="DE", today=TODAY) == date(1985, 4, 13)
    assert normalize_date_of_birth("04.03.1985", country="US", today=TODAY) == date(1985, 3, 4)


def test_two_digit_years_pick_the_latest_past_century() -> None:
    assert normalize_date_of_birth("3/4/85", country="US", today=TODAY) == date(1985, 3, 4)
    assert normalize_date_of_birth("3/4/20", country="US", today=TODAY) == date(2020, 3, 4)
    assert normalize_date_of_birth("3/4/30", country="US", today=TODAY) == date(1930, 3, 4)


def test_future_dates_and_ages_over_120_are_rejected() -> None:
    assert normalize_date_of_birth("2024-06-02", today=TODAY) is None
    assert normalize_date_of_birth("2024-06-01", today=TODAY) == TODAY
    assert normalize_date_of_birth("1904-06-01", today=TODAY) == date(1904, 6, 1)  # exactly 120
    assert normalize_date_of_birth("1903-06-02", today=TODAY) == date(1903, 6, 2)  # still 120
    assert normalize_date_of_birth("1903-06-01", today=TODAY) is None  # 121 today
    assert normalize_date_of_birth("1900-01-01", today=TODAY) is None
    assert normalize_date_of_birth(date(2030, 1, 1), today=TODAY) is None


def test_today_defaults_to_the_real_today() -> None:
    assert normalize_date_of_birth("1985-03-04") == date(1985, 3, 4)
    assert normalize_date_of_birth(f"{date.today().year + 1}-01-01") is None


@pytest.mark.parametrize(
    "value",
    [
        19850304,
        *cells("1985-02-30 | 1985-13-01 | 31/31/1985 | 0985-03-04 | March 1985 | 4 Smarch 1985 | yesterday | 04/03"),
        "1985-03-04 garbage",
        "2/29/1985",
    ],
)
def test_unparseable_dates_are_none(value: object) -> None:
    assert normalize_date_of_birth(value, today=TODAY) is None


# --------------------------------------------------------------------------- postcode, city, country


POSTCODES = """
94105      | US             | 94105
94105-1234 | US             | 94105
941051234  | US             | 94105
2138       | US             | 02138
SW1A 1AA   | US             | -
00000      | US             | -
sw1a 1aa   | GB             | SW1A1AA
m1 1ae     | United Kingdom | M11AE
SW1A 1A    | GB             | -
200000     | CN             | 200000
20000      | CN             | -
D-10115    | DE             | 10115
k1a 0b6    | CA             | K1A0B6
1234 ab    | NL             | 1234AB
100-0001   | JP             | 1000001
75001      | -              | 75001
ab 12 cd   | -              | AB12CD
N/A        | -              | -
unknown    | -              | -
"""


@pytest.mark.parametrize(
    ("value", "country", "expected"), [*rows(POSTCODES), (2138, "US", "02138"), (" n1 9gu ", "GB", "N19GU")]
)
def test_postcodes(value: object, country: str | None, expected: str | None) -> None:
    assert normalize_postcode(value, country) == expected


CITIES = """
St. Louis     | saint louis
ST LOUIS      | saint louis
Saint-Étienne | saint etienne
Köln          | koln
Mt. Vernon    | mount vernon
上海市        | 上海
上海          | 上海
北京 市       | 北京
市            | 市
...           | -
"""


@pytest.mark.parametrize(("value", "expected"), [*rows(CITIES), ("  São   Paulo ", "sao paulo")])
def test_cities(value: str, expected: str | None) -> None:
    assert normalize_city(value) == expected


COUNTRIES = """
US | US
us | US
USA | US
U.S.A. | US
United States | US
united states of america | US
UK | GB
Great Britain | GB
GBR | GB
Deutschland | DE
DEU | DE
中国 | CN
China | CN
CHN | CN
The Netherlands | NL
España | ES
日本 | JP
Narnia | -
XX | -
U | -
"""


@pytest.mark.parametrize(("value", "expected"), rows(COUNTRIES))
def test_countries(value: str, expected: str | None) -> None:
    assert normalize_country(value) == expected


def test_every_alpha2_code_maps_to_itself() -> None:
    from cdp.identity.normalize import _ALPHA2, _ALPHA3

    assert len(_ALPHA2) == 250  # ISO 3166-1 (249) + XK
    assert all(normalize_country(code) == code for code in _ALPHA2)
    assert all(normalize_country(alpha3) == alpha2 for alpha3, alpha2 in _ALPHA3.items())


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_property_city_and_postcode_are_idempotent(value: str) -> None:
    city = normalize_city(value)
    if city is not None:
        assert normalize_city(city) == city
    street = normalize_street(value)
    if street is not None:
        assert normalize_street(street) == street
    for country in (None, "US", "GB", "DE"):
        postcode = normalize_postcode(value, country)
        if postcode is not None:
            assert normalize_postcode(postcode, country) == postcode


@settings(max_examples=200, deadline=None)
@given(first=st.from_regex(r"[A-Za-z]{2,10}", fullmatch=True), last=st.from_regex(r"[A-Za-z]{2,10}", fullmatch=True))
def test_property_tokens_ignore_name_order(first: str, last: str) -> None:
    assume(not {first.lower(), last.lower()} & (_TITLES | _SUFFIXES))
    a, b = normalize_name(full=f"{first} {last}"), normalize_name(full=f"{last}, {first}")
    assert a is not None and b is not None
    assert a.tokens == tuple(sorted([first.lower(), last.lower()]))
    assert b.tokens == a.tokens


# --------------------------------------------------------------------------- plugin


def test_default_plugin_registers_every_normaliser() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(default_normalizers)
    results = pm.hook.cdp_normalizers(context=PluginContext(settings=Settings()))
    assert len(results) == 1
    normalisers = results[0]
    assert normalisers == {
        "email": normalize_email,
        "phone": normalize_phone,
        "name": normalize_name,
        "date_of_birth": normalize_date_of_birth,
        "postcode": normalize_postcode,
        "city": normalize_city,
        "country": normalize_country,
    }
    assert normalisers["phone"]("(415) 555-0100") == "+14155550100"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12 Maple St.", "12 maple street"),
        ("12  MAPLE   STREET", "12 maple street"),
        ("Hauptstr. 5", "hauptstrasse 5"),
        ("Hauptstraße 5", "hauptstrasse 5"),
        ("3 Rue d'Alésia", "3 rue dalesia"),
        ("3 r. d'Alésia", "3 rue dalesia"),
        ("Flat 3, 12 Maple Street", "flat 3 12 maple street"),  # the flat number stays: neighbours differ
        ("北京路 12号", "北京路12号"),
        ("  ", None),
    ],
)
def test_street_lines(raw: str, expected: str | None) -> None:
    assert normalize_street(raw) == expected
