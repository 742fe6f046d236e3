"""Normalisation of identifiers before identity resolution: one pure function per field type.

Two records can only be linked if their identifiers are written the same way:
``John.Smith+shop@GoogleMail.com`` must meet ``johnsmith@gmail.com``,
``(415) 555-0100`` must meet ``+1 415 555 0100``, ``王伟`` must meet
``Wang Wei``. Every function here turns one raw value into a comparable form.

Contract shared by every normaliser (the ingestion pipeline relies on it):

- **total**: they never raise, whatever they are given (None, ints, lists,
  bytes, emoji, control characters, 10 KB strings); they return ``None`` when
  there is nothing usable. Strings are cut to :data:`MAX_INPUT_CHARS` first,
  so the work per call is bounded;
- **pure and deterministic**: no I/O, no logging (values are personal data),
  the same input always gives the same output (``today`` is a parameter);
- **fast**: a million records go through them in the benchmark, so regexes
  are precompiled and repeated values (names, cities, countries, dates, phone
  regions) are cached with :func:`functools.lru_cache`.

The default plugin (:mod:`cdp.identity.default_normalizers`) registers these
functions through the ``cdp_normalizers`` hook; plugins may replace any of them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Final

import phonenumbers

from cdp.identity._dates import parse_date_parts
from cdp.identity._names import NormalizedName, fold, has_han, name_match_keys, parse_name

__all__ = [
    "MAX_INPUT_CHARS",
    "NormalizedEmail",
    "NormalizedName",
    "name_match_keys",
    "normalize_city",
    "normalize_country",
    "normalize_date_of_birth",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_postcode",
]

MAX_INPUT_CHARS: Final = 256
"""Strings are truncated to this many characters before any other work."""


def _text(value: object) -> str | None:
    """A bounded, stripped string, or None for non-strings and blank strings."""
    if not isinstance(value, str):
        return None
    return value[:MAX_INPUT_CHARS].strip() or None


def _digits_of_int(value: object) -> str | None:
    """Spreadsheets turn phone numbers and ZIP codes into ints; accept those (not bools)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**17:
        return str(value)
    return None


# --------------------------------------------------------------------------- email


@dataclass(frozen=True, slots=True)
class NormalizedEmail:
    """An e-mail address in three forms: as given, as stored, as matched."""

    original: str
    """As given, stripped of surrounding whitespace."""
    address: str
    """Lower-cased, ``mailto:`` and angle brackets removed, domain in IDNA (punycode) form."""
    match_key: str
    """For matching only: ``+tag`` removed; for Gmail dots removed and googlemail.com → gmail.com."""


_EMAIL_CHAR: Final = r"[^\s@(),:;<>\[\]\\\"\x00-\x1f\x7f]"
_EMAIL: Final = re.compile(rf"({_EMAIL_CHAR}{{1,64}})@({_EMAIL_CHAR}{{1,253}})")
_DOMAIN_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD: Final = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})


def _email_domain(domain: str) -> str | None:
    domain = domain.lower().removesuffix(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return None
    if not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    return domain


def normalize_email(value: object) -> NormalizedEmail | None:
    """Normalise an e-mail address; None unless it is plausible (one ``@``, a dotted domain, no spaces)."""
    original = _text(value)
    if original is None:
        return None
    s = original
    if s[:7].lower() == "mailto:":
        s = s[7:].strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    match = _EMAIL.fullmatch(s)
    if match is None:
        return None
    local = match[1].lower()
    if local[0] == "." or local[-1] == "." or ".." in local:
        return None
    domain = _email_domain(match[2])
    if domain is None:
        return None
    key_local = local.split("+", 1)[0] or local
    key_domain = domain
    if domain in _GMAIL_DOMAINS:
        key_local = key_local.replace(".", "") or key_local
        key_domain = "gmail.com"
    return NormalizedEmail(original=original, address=f"{local}@{domain}", match_key=f"{key_local}@{key_domain}")


# --------------------------------------------------------------------------- phone

_MAX_PHONE_CHARS: Final = 64
_E164: Final = phonenumbers.PhoneNumberFormat.E164
_SUPPORTED_REGIONS: Final = frozenset(phonenumbers.SUPPORTED_REGIONS)


@lru_cache(maxsize=1024)
def _phone_region(region: str) -> str | None:
    code = normalize_country(region)
    return code if code in _SUPPORTED_REGIONS else None


def normalize_phone(value: object, default_region: str | None = "US") -> str | None:
    """A phone number in E.164 (``+14155550100``), or None if it is not a possible number.

    Numbers without an international prefix are read in ``default_region``,
    which may be an ISO code or a country name (the record's country); both
    ``+`` and the ``00`` international prefix are understood in every region.
    Ints are accepted (spreadsheets drop the formatting).
    """
    s = _digits_of_int(value) or _text(value)
    if s is None or len(s) > _MAX_PHONE_CHARS:
        return None
    region = _phone_region(default_region) if isinstance(default_region, str) else None
    return _normalize_phone(s, region)


@lru_cache(maxsize=65536)
def _normalize_phone(text: str, region: str | None) -> str | None:
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, _E164))


# --------------------------------------------------------------------------- name


def normalize_name(
    given: object = None, family: object = None, full: object = None, *, country: str | None = None
) -> NormalizedName | None:
    """Normalise a person's name from ``given``/``family`` (preferred) or ``full``.

    ``country`` (code or name) only matters for pinyin names in Latin script:
    in CN an ambiguous "Li Wang" is read family name first. See
    :mod:`cdp.identity._names` for the full policy. None if no name token is left.
    """
    parts = (_text(given), _text(family), _text(full))
    if parts == (None, None, None):
        return None
    china = isinstance(country, str) and normalize_country(country) == "CN"
    return parse_name(*parts, china)


# --------------------------------------------------------------------------- date of birth

_MONTH_FIRST_COUNTRIES: Final = frozenset({"US", "PR", "GU", "VI", "AS", "MP", "UM", "FM", "MH", "PW", "PH"})
_MAX_AGE: Final = 120


def _plausible_birth_date(dob: date, today: date) -> bool:
    if dob > today:
        return False
    age = today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
    return age <= _MAX_AGE


def normalize_date_of_birth(value: object, *, country: str | None = None, today: date | None = None) -> date | None:
    """Parse a date of birth; None if unparseable, in the future, or more than 120 years ago.

    Slash and dash dates such as "03/04/1985" are month first when ``country``
    is the US (or a territory using its convention) or unknown, day first
    otherwise. Accepted formats are listed in :mod:`cdp.identity._dates`.
    """
    if isinstance(today, datetime):
        today = today.date()
    if not isinstance(today, date):
        today = date.today()
    if isinstance(value, datetime):
        dob = value.date()
    elif isinstance(value, date):
        dob = value
    elif isinstance(value, str):
        code = normalize_country(country) if isinstance(country, str) else None
        parts = parse_date_parts(value[:MAX_INPUT_CHARS], code is None or code in _MONTH_FIRST_COUNTRIES)
        if parts is None:
            return None
        year, month, day = parts
        if year < 100:  # two-digit year: the latest century that is not in the future
            year += 2000 if date(2000 + year, month, day) <= today else 1900
        try:
            dob = date(year, month, day)
        except ValueError:
            return None
    else:
        return None
    return dob if _plausible_birth_date(dob, today) else None


# --------------------------------------------------------------------------- postcode

_POSTCODE_FORMATS: Final[dict[str, re.Pattern[str]]] = {
    code: re.compile(pattern)
    for codes, pattern in (
        ("GB", r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}|GIR0AA"),
        ("CA", r"[A-Z]\d[A-Z]\d[A-Z]\d"),
        ("NL", r"[1-9]\d{3}[A-Z]{2}"),
        ("IE", r"[A-Z]\d[\dW][A-Z\d]{4}"),
        ("CN IN RU SG", r"\d{6}"),
        ("DE FR ES IT MX SE FI PL KR MY TR UA", r"\d{5}"),
        ("AU AT BE CH DK NO NZ ZA HU LU PH", r"\d{4}"),
        ("JP PT IL", r"\d{7}"),
        ("BR", r"\d{8}"),
    )
    for code in codes.split()
}
_NOT_ALNUM: Final = re.compile(r"[^A-Z0-9]+")
_LETTER_PREFIX: Final = re.compile(r"[A-Z]{1,3}(\d+)")  # "D-10115", "CH-8001", "F-75001"
_GENERIC_POSTCODE: Final = re.compile(r"(?=[A-Z]*\d)[A-Z0-9]{2,10}")


def normalize_postcode(value: object, country: str | None = None) -> str | None:
    """A postcode for matching: upper-case, no spaces or dashes, validated where the format is known.

    US: the 5-digit ZIP (ZIP+4 is cut; 3 or 4 digits are zero-padded, as
    spreadsheets drop leading zeros). GB: ``"sw1a 1aa"`` → ``"SW1A1AA"``.
    CN: 6 digits. Unknown countries: 2–10 letters/digits with at least one digit.
    Ints (spreadsheet ZIP codes) are accepted only when the country is known.
    """
    code = normalize_country(country) if isinstance(country, str) else None
    s = _text(value) or (_digits_of_int(value) if code else None)  # an int is only a postcode in a known country
    if s is None:
        return None
    cleaned = _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", s).upper())
    if not cleaned or not cleaned.isascii() or set(cleaned) == {"0"}:
        return None
    if code == "US":
        if not cleaned.isdigit():
            return None
        if len(cleaned) in (3, 4):
            return cleaned.zfill(5)
        return cleaned[:5] if len(cleaned) in (5, 9) else None
    pattern = _POSTCODE_FORMATS.get(code or "")
    if pattern is None:
        return cleaned if _GENERIC_POSTCODE.fullmatch(cleaned) else None
    if pattern.fullmatch(cleaned):
        return cleaned
    prefixed = _LETTER_PREFIX.fullmatch(cleaned)
    if prefixed and pattern.fullmatch(prefixed[1]):
        return prefixed[1]
    return None


# --------------------------------------------------------------------------- city

_CITY_ABBREVIATIONS: Final = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}


@lru_cache(maxsize=65536)
def _normalize_city(text: str) -> str | None:
    folded = fold(text, keep_digits=True)
    if has_han(folded):
        han = folded.replace(" ", "").replace("-", "")
        return han.rstrip("市") or han[:1] or None
    words = folded.replace("-", " ").split()
    return " ".join(_CITY_ABBREVIATIONS.get(w, w) for w in words) or None


def normalize_city(value: object) -> str | None:
    """A city name for matching: casefolded, accents stripped, "St." → "saint", spaces collapsed.

    Han names keep their characters, without spaces and without a trailing 市
    ("上海市" → "上海").
    """
    s = _text(value)
    return _normalize_city(s) if s is not None else None


# --------------------------------------------------------------------------- street

_STREET_WORDS: Final = {
    "st": "street",
    "str": "strasse",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "dr": "drive",
    "ln": "lane",
    "blvd": "boulevard",
    "bd": "boulevard",
    "bld": "boulevard",
    "ct": "court",
    "pl": "place",
    "cres": "crescent",
    "cct": "circuit",
    "cir": "circle",
    "hwy": "highway",
    "pde": "parade",
    "tce": "terrace",
    "sq": "square",
    "pkwy": "parkway",
    "r": "rue",
    "all": "allee",
    "ch": "chemin",
    "chem": "chemin",
}
"""Street-type abbreviations (English, German, French) → the word written out."""


@lru_cache(maxsize=65536)
def _normalize_street(text: str) -> str | None:
    folded = fold(text, keep_digits=True)
    if has_han(folded):
        return folded.replace(" ", "").replace("-", "") or None
    words = [_STREET_WORDS.get(word, word) for word in folded.replace("-", " ").split()]
    # "Hauptstr." = "Hauptstraße"
    return " ".join(w + "asse" if w.endswith("str") and len(w) > 5 else w for w in words) or None


def normalize_street(value: object) -> str | None:
    """A street line for matching: folded like a city, street-type abbreviations written out.

    "12 Maple St." → ``"12 maple street"``, "Hauptstr. 5" → ``"hauptstrasse 5"``
    (ß folds to ss), "3 Rue d'Alésia" → ``"3 rue dalesia"``; Han lines lose their
    spaces. House and flat numbers stay: they tell neighbours apart.
    """
    s = _text(value)
    return _normalize_street(s) if s is not None else None


# --------------------------------------------------------------------------- country

_ISO_3166_TEXT: Final = """
AD AND AE ARE AF AFG AG ATG AI AIA AL ALB AM ARM AO AGO AQ ATA AR ARG AS ASM AT AUT AU AUS AW ABW AX ALA AZ AZE
BA BIH BB BRB BD BGD BE BEL BF BFA BG BGR BH BHR BI BDI BJ BEN BL BLM BM BMU BN BRN BO BOL BQ BES BR BRA BS BHS
BT BTN BV BVT BW BWA BY BLR BZ BLZ CA CAN CC CCK CD COD CF CAF CG COG CH CHE CI CIV CK COK CL CHL CM CMR CN CHN
CO COL CR CRI CU CUB CV CPV CW CUW CX CXR CY CYP CZ CZE DE DEU DJ DJI DK DNK DM DMA DO DOM DZ DZA EC ECU EE EST
EG EGY EH ESH ER ERI ES ESP ET ETH FI FIN FJ FJI FK FLK FM FSM FO FRO FR FRA GA GAB GB GBR GD GRD GE GEO GF GUF
GG GGY GH GHA GI GIB GL GRL GM GMB GN GIN GP GLP GQ GNQ GR GRC GS SGS GT GTM GU GUM GW GNB GY GUY HK HKG HM HMD
HN HND HR HRV HT HTI HU HUN ID IDN IE IRL IL ISR IM IMN IN IND IO IOT IQ IRQ IR IRN IS ISL IT ITA JE JEY JM JAM
JO JOR JP JPN KE KEN KG KGZ KH KHM KI KIR KM COM KN KNA KP PRK KR KOR KW KWT KY CYM KZ KAZ LA LAO LB LBN LC LCA
LI LIE LK LKA LR LBR LS LSO LT LTU LU LUX LV LVA LY LBY MA MAR MC MCO MD MDA ME MNE MF MAF MG MDG MH MHL MK MKD
ML MLI MM MMR MN MNG MO MAC MP MNP MQ MTQ MR MRT MS MSR MT MLT MU MUS MV MDV MW MWI MX MEX MY MYS MZ MOZ NA NAM
NC NCL NE NER NF NFK NG NGA NI NIC NL NLD NO NOR NP NPL NR NRU NU NIU NZ NZL OM OMN PA PAN PE PER PF PYF PG PNG
PH PHL PK PAK PL POL PM SPM PN PCN PR PRI PS PSE PT PRT PW PLW PY PRY QA QAT RE REU RO ROU RS SRB RU RUS RW RWA
SA SAU SB SLB SC SYC SD SDN SE SWE SG SGP SH SHN SI SVN SJ SJM SK SVK SL SLE SM SMR SN SEN SO SOM SR SUR SS SSD
ST STP SV SLV SX SXM SY SYR SZ SWZ TC TCA TD TCD TF ATF TG TGO TH THA TJ TJK TK TKL TL TLS TM TKM TN TUN TO TON
TR TUR TT TTO TV TUV TW TWN TZ TZA UA UKR UG UGA UM UMI US USA UY URY UZ UZB VA VAT VC VCT VE VEN VG VGB VI VIR
VN VNM VU VUT WF WLF WS WSM YE YEM YT MYT ZA ZAF ZM ZMB ZW ZWE XK XKX
"""
_ISO_3166: Final = _ISO_3166_TEXT.split()
_ALPHA2: Final = frozenset(_ISO_3166[0::2])
_ALPHA3: Final = dict(zip(_ISO_3166[1::2], _ISO_3166[0::2], strict=True))

_COUNTRY_NAMES: Final = """
US: united states; united states of america; america; u.s.a.; u.s.; usa; 美国; 美國
US: estados unidos; etats-unis; vereinigte staaten
GB: united kingdom; uk; u.k.; great britain; britain; england; scotland; wales; northern ireland; 英国; 英國
GB: grande-bretagne; royaume-uni; reino unido; großbritannien; vereinigtes königreich
CN: china; people's republic of china; prc; mainland china; chine; volksrepublik china
CN: 中国; 中國; 中华人民共和国; 中華人民共和國
DE: germany; deutschland; allemagne; alemania; bundesrepublik deutschland; brd; 德国; 德國
FR: france; frankreich; francia; république française; 法国; 法國
ES: spain; españa; espagne; spanien; 西班牙
IT: italy; italia; italie; italien; 意大利
NL: netherlands; the netherlands; holland; nederland; pays-bas; niederlande; países bajos; 荷兰
BE: belgium; belgië; belgique; belgien; 比利时
CH: switzerland; schweiz; suisse; svizzera; suiza; 瑞士
AT: austria; österreich; autriche; 奥地利
IE: ireland; republic of ireland; éire; irlande; irland; 爱尔兰
PT: portugal; 葡萄牙
PL: poland; polska; pologne; polen; 波兰
SE: sweden; sverige; suède; schweden; 瑞典
NO: norway; norge; norvège; norwegen; 挪威
DK: denmark; danmark; danemark; dänemark; 丹麦
FI: finland; suomi; finnland; 芬兰
GR: greece; hellas; ελλάδα; griechenland; grèce; 希腊
CZ: czech republic; czechia; česko; česká republika; tschechien; 捷克
HU: hungary; magyarország; ungarn
RO: romania; românia; rumänien
RU: russia; russian federation; россия; russland; russie; rusia; 俄罗斯; 俄羅斯
UA: ukraine; україна; ucrania
TR: turkey; türkiye; türkei; turquie; turquía; 土耳其
CA: canada; kanada; 加拿大
MX: mexico; méxico; mexique; mexiko; 墨西哥
BR: brazil; brasil; brésil; brasilien; 巴西
AR: argentina; argentine; argentinien; 阿根廷
CL: chile; chili
CO: colombia; colombie; kolumbien
PE: peru; pérou
VE: venezuela
AU: australia; australie; australien; 澳大利亚; 澳洲
NZ: new zealand; aotearoa; nouvelle-zélande; neuseeland; 新西兰
JP: japan; nippon; nihon; japon; 日本
KR: south korea; korea; republic of korea; rok; corée du sud; südkorea; 韩国; 韓國; 대한민국; 한국
KP: north korea; democratic people's republic of korea; dprk; 朝鲜
TW: taiwan; republic of china; 台湾; 臺灣; 台灣
HK: hong kong; hongkong; 香港
MO: macau; macao; 澳门; 澳門
SG: singapore; singapur; 新加坡
MY: malaysia; 马来西亚
TH: thailand; thaïlande; 泰国
VN: vietnam; viet nam; việt nam; 越南
PH: philippines; the philippines; pilipinas; 菲律宾
ID: indonesia; indonésie; indonesien; 印度尼西亚; 印尼
IN: india; bharat; inde; indien; 印度
PK: pakistan
BD: bangladesh
IL: israel; israël
SA: saudi arabia; ksa; arabie saoudite; saudi-arabien; 沙特阿拉伯
AE: united arab emirates; uae; u.a.e.; emirates; 阿联酋
EG: egypt; égypte; ägypten; misr
ZA: south africa; rsa; afrique du sud; südafrika; 南非
NG: nigeria
KE: kenya
MA: morocco; maroc; marokko
IR: iran; islamic republic of iran
IQ: iraq
LU: luxembourg; luxemburg
IS: iceland; ísland; island
HR: croatia; hrvatska; kroatien
RS: serbia; srbija; serbien
SI: slovenia; slovenija; slowenien
SK: slovakia; slovensko; slowakei
BG: bulgaria; bulgarien
LT: lithuania; lietuva; litauen
LV: latvia; latvija; lettland
EE: estonia; eesti; estland
CY: cyprus; zypern; chypre
MT: malta; malte
"""


def _country_key(text: str) -> str:
    words = fold(text).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return "".join(words).replace("-", "")


_COUNTRY_BY_NAME: Final[dict[str, str]] = {
    _country_key(name): line[:2] for line in _COUNTRY_NAMES.strip().splitlines() for name in line[4:].split(";")
}


@lru_cache(maxsize=4096)
def _normalize_country(text: str) -> str | None:
    key = _country_key(text)
    if not key:
        return None
    if key in _COUNTRY_BY_NAME:
        return _COUNTRY_BY_NAME[key]
    upper = key.upper()
    if len(key) == 2 and upper in _ALPHA2:
        return upper
    return _ALPHA3.get(upper) if len(key) == 3 else None


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2 code from an alpha-2 or alpha-3 code or a common name ("USA", "UK", "中国")."""
    s = _text(value)
    return _normalize_country(s) if s is not None else None
