"""The corruption model: how a true person looks once a source has captured them.

Sources call these functions once per field occurrence, so every record gets its
own independent draw of typos, nicknames, formats and omissions, as people and
cashiers really produce them. Probabilities are the ones documented in
docs/demo-data.md ("Corruption model"); change both together.
"""

from __future__ import annotations

from random import Random
from typing import Final

from cdp.demo import _names as names
from cdp.demo import _places as places
from cdp.demo._places import City
from cdp.demo._population import Address, Person, Phone, fold_ascii

TYPO_FIRST: Final = 0.04
TYPO_LAST: Final = 0.04
NICKNAME: Final = 0.15
INITIAL: Final = 0.04
SWAP: Final = 0.03
FOLD: Final = 0.35
CASE: Final = 0.08
SPACE: Final = 0.05
HAN_HOMOPHONE: Final = 0.03
ENGLISH_NAME: Final = 0.40
CANTONESE: Final = 0.30
PINYIN_FIELDS_SWAPPED: Final = 0.15
# Share of records writing a Chinese name in Han characters, by source, for residents of China and the diaspora.
HAN_SHARE: Final = {"cn": {"web": 0.50, "pos": 0.75, "survey": 0.65}, "cnx": {"web": 0.05, "pos": 0.0, "survey": 0.15}}

SECOND_EMAIL_USED: Final = 0.35
EMAIL_CASE: Final = 0.08
PLUS_TAG: Final = 0.05
GMAIL_DOTS: Final = 0.10
DOMAIN_TYPO: Final = 0.01
LANDLINE_USED: Final = 0.25
PHONE_TYPO: Final = 0.01
BIRTH_ISO: Final = 0.45
BIRTH_SWAP: Final = 0.02
BIRTH_PLACEHOLDER: Final = 0.01
STREET_ABBREVIATED: Final = 0.40
ADDRESS_CASE: Final = 0.05
ADDRESS_FOLD: Final = 0.20
POSTCODE_MISSING: Final = 0.15
ZIP_ZERO_DROPPED: Final = 0.20
GB_POSTCODE_MANGLED: Final = 0.30
STATE_FULL: Final = 0.10
CN_SUFFIX: Final = 0.50
CN_ADDRESS_PINYIN: Final = 0.20
CITY_ALIAS: Final = 0.05

_GENDERS: Final = {
    "female": ("female", "female", "Female", "F", "f", "woman"),
    "male": ("male", "male", "Male", "M", "m", "man"),
    "non-binary": ("non-binary", "nonbinary", "other", "X"),
}
_PLUS_TAGS: Final = ("shop", "store", "news", "deals", "promo", "cdp")


# text noise -------------------------------------------------------------------------------------------------
def typo(rng: Random, text: str) -> str:
    """One edit: neighbouring-key substitution, deletion, doubled letter or transposition."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text))
    op = rng.random()
    ch = text[i]
    if op < 0.4:
        near = names.KEY_NEIGHBOURS.get(ch.lower())
        if not near:
            return text[:i] + text[i + 1 :]
        sub = rng.choice(near)
        return text[:i] + (sub.upper() if ch.isupper() else sub) + text[i + 1 :]
    if op < 0.65:
        return text[:i] + text[i + 1 :]
    if op < 0.85:
        return text[:i] + ch + text[i:]
    return text[: i - 1] + ch + text[i - 1] + text[i + 1 :]


def case_space(rng: Random, text: str, case: float = CASE, space: float = SPACE) -> str:
    """Upper/lower-case a field, or add leading/trailing/doubled spaces, with the given odds."""
    if rng.random() < case:
        text = text.upper() if rng.random() < 0.5 else text.lower()
    if rng.random() < space:
        u = rng.random()
        if u < 0.3:
            text = f" {text}"
        elif u < 0.6 or " " not in text:
            text = f"{text} "
        else:
            text = text.replace(" ", "  ", 1)
    return text


def _fold_name(rng: Random, text: str) -> str:
    """Write a German/French name without its diacritics (Müller -> Mueller or Muller)."""
    if text.isascii():
        return text
    german = rng.random() < 0.5
    out = [names.FOLD_GERMAN[c][0 if german else 1] if c in names.FOLD_GERMAN else c for c in text]
    return fold_ascii("".join(out))


# names ------------------------------------------------------------------------------------------------------
def _western_parts(rng: Random, p: Person, day: int) -> tuple[str, str]:
    first, last = p.first, p.last_on(day)
    nick = names.NICKNAMES.get(first)
    if nick and rng.random() < NICKNAME:
        first = rng.choice(nick)
    if rng.random() < FOLD:
        first, last = _fold_name(rng, first), _fold_name(rng, last)
    if rng.random() < TYPO_FIRST:
        first = typo(rng, first)
    if rng.random() < TYPO_LAST:
        last = typo(rng, last)
    if rng.random() < INITIAL:
        first = first[0] + ("." if rng.random() < 0.5 else "")
    return first, last


def _chinese_parts(rng: Random, p: Person, src: str) -> tuple[str, str, str]:
    """(given, family, script): script is "han", "pinyin" or "english" (an English given name)."""
    if rng.random() < HAN_SHARE[p.culture][src]:
        given = p.han_given
        if rng.random() < HAN_HOMOPHONE:
            i = rng.randrange(len(given))
            given = given[:i] + names.CN_HOMOPHONES.get(given[i], given[i]) + given[i + 1 :]
        return given, p.han_family, "han"
    family = p.canto if p.culture == "cnx" and p.canto and rng.random() < CANTONESE else rng.choice(p.py_family)
    if p.english and rng.random() < ENGLISH_NAME:
        return p.english, family, "english"
    syllables = p.py_given
    if len(syllables) == 1:
        given = syllables[0]
    else:
        u = rng.random()
        rest = "".join(s.lower() for s in syllables[1:])
        given = syllables[0] + rest if u < 0.7 else " ".join(syllables) if u < 0.9 else "-".join(syllables)
    if rng.random() < TYPO_FIRST:
        given = typo(rng, given)
    return given, family, "pinyin"


def split_name(rng: Random, p: Person, day: int, src: str) -> tuple[str, str]:
    """(first name, last name) as typed into two form fields."""
    if p.py_family:
        given, family, script = _chinese_parts(rng, p, src)
        if rng.random() < (PINYIN_FIELDS_SWAPPED if script == "pinyin" else SWAP if script == "english" else 0.0):
            given, family = family, given
        return case_space(rng, given, space=SPACE / 2), case_space(rng, family, space=SPACE / 2)
    first, last = _western_parts(rng, p, day)
    if rng.random() < SWAP:
        first, last = last, first
    return case_space(rng, first), case_space(rng, last)


def full_name(rng: Random, p: Person, day: int, src: str) -> str:
    """The whole name in one field, in the order and style people write it."""
    if p.py_family:
        given, family, script = _chinese_parts(rng, p, src)
        if script == "han":
            return family + given if rng.random() < 0.95 else f"{family} {given}"
        u = rng.random()
        if script == "english":
            return case_space(rng, f"{given} {family}" if u < 0.85 else f"{family} {given}")
        text = f"{family} {given}" if u < 0.45 else f"{given} {family}" if u < 0.9 else f"{family.upper()} {given}"
        return case_space(rng, text)
    first, last = _western_parts(rng, p, day)
    if rng.random() < SWAP:
        text = f"{last}, {first}" if rng.random() < 0.5 else f"{last} {first}"
    else:
        text = f"{first} {last}"
    return case_space(rng, text)


def gender(rng: Random, p: Person) -> str:
    return rng.choice(_GENDERS[p.gender])


# contact details --------------------------------------------------------------------------------------------
def email(rng: Random, p: Person) -> str:
    address = p.email2 if p.email2 and rng.random() < SECOND_EMAIL_USED else p.email
    local, _, domain = address.partition("@")
    if domain == "gmail.com" and rng.random() < GMAIL_DOTS:
        if "." in local:
            local = local.replace(".", "")
        elif len(local) > 2:
            i = rng.randrange(1, len(local) - 1)
            local = f"{local[:i]}.{local[i:]}"
    if domain in places.PLUS_TAG_DOMAINS and rng.random() < PLUS_TAG:
        local = f"{local}+{rng.choice(_PLUS_TAGS)}"
    if rng.random() < DOMAIN_TYPO:
        domain = places.EMAIL_DOMAIN_TYPOS.get(domain, domain)
    if rng.random() < EMAIL_CASE:
        u = rng.random()
        if u < 0.4:
            local = ".".join(part.capitalize() for part in local.split("."))
            domain = domain.capitalize()
        elif u < 0.7:
            local, domain = local.upper(), domain.upper()
        else:
            local = local.capitalize()
    return f"{local}@{domain}"


def pick_phone(rng: Random, p: Person) -> Phone:
    return p.landline if p.landline is not None and rng.random() < LANDLINE_USED else p.mobile


def phone(rng: Random, p: Person, *, keyed: bool = False) -> str:
    """A phone number of the person in one of the country's usual formats; ``keyed`` allows a digit typo."""
    ph = pick_phone(rng, p)
    nsn = ph.nsn
    if keyed and rng.random() < PHONE_TYPO:
        i = len(nsn) - 1 - rng.randrange(4)
        nsn = nsn[:i] + str((int(nsn[i]) + rng.randrange(1, 10)) % 10) + nsn[i + 1 :]
    return rng.choice(phone_formats(ph.country, nsn, ph.split))


def phone_formats(country: str, nsn: str, split: int) -> tuple[str, ...]:
    """Every way the demo data writes this number; each parses with ``phonenumbers`` for the country."""
    cc = places.DIAL_CODES[country]
    e164 = f"+{cc}{nsn}"
    if country == "US":
        a, b, c = nsn[:3], nsn[3:6], nsn[6:]
        return (e164, f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", nsn, f"+1 {a}-{b}-{c}", f"1-{a}-{b}-{c}")
    if country == "FR":
        pairs = " ".join(nsn[i : i + 2] for i in range(1, 9, 2))
        national = f"0{nsn[0]} {pairs}"
        return (
            e164,
            national,
            national.replace(" ", "."),
            f"0{nsn}",
            f"+33 {nsn[0]} {pairs}",
            f"0033 {nsn[0]} {pairs}",
        )
    area, rest = nsn[:split], nsn[split:]
    if country == "CN":
        if nsn[0] == "1":
            a, b, c = nsn[:3], nsn[3:7], nsn[7:]
            return (nsn, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {a} {b} {c}", e164, f"0086 {nsn}")
        grouped = f"{rest[:4]} {rest[4:]}"
        return (f"0{area}-{rest}", f"(0{area}) {grouped}", f"+86 {area} {grouped}", f"0{nsn}", e164, f"0{area} {rest}")
    if country == "GB":
        grouped = f"{rest[:4]} {rest[4:]}" if len(rest) == 8 else f"{rest[:3]} {rest[3:]}" if len(rest) == 7 else rest
        return (
            e164,
            f"0{area} {grouped}",
            f"0{nsn}",
            f"+44 {area} {grouped}",
            f"+44 (0){area} {grouped}",
            f"0044 {area} {grouped}",
        )
    return (
        e164,
        f"0{area} {rest}",
        f"0{area}/{rest}",
        f"0{area}-{rest}",
        f"+49 {area} {rest}",
        f"+49 (0){area} {rest}",
        f"0049 {area} {rest}",
        f"0{nsn}",
    )


def birth_date(rng: Random, p: Person) -> str:
    if rng.random() < BIRTH_PLACEHOLDER:
        return rng.choice(("1970-01-01", "1900-01-01"))
    y, m, d = p.birth.year, p.birth.month, p.birth.day
    if d <= 12 and rng.random() < BIRTH_SWAP:
        m, d = d, m
    if rng.random() < BIRTH_ISO:
        return f"{y:04d}-{m:02d}-{d:02d}"
    country = p.country
    if country == "US":
        return f"{m:02d}/{d:02d}/{y}" if rng.random() < 0.6 else f"{m}/{d}/{y}"
    if country == "DE":
        return f"{d:02d}.{m:02d}.{y}"
    if country == "CN":
        return f"{y}年{m}月{d}日" if rng.random() < 0.6 else f"{y}/{m}/{d}"
    return f"{d:02d}/{m:02d}/{y}"


# addresses --------------------------------------------------------------------------------------------------
def street(rng: Random, a: Address, *, pinyin: bool = False) -> str:
    country = a.city.country
    if country == "CN":
        if pinyin:
            room = a.unit.partition("单元")[2].rstrip("室")
            return a.pinyin + (f", Room {room}" if room and rng.random() < 0.5 else "")
        return a.after + (a.unit if a.unit and rng.random() < 0.7 else "")
    kind = a.kind
    if kind and rng.random() < STREET_ABBREVIATED:
        kind = rng.choice(places.STREET_ABBREVIATIONS[kind])
    line = f"{a.before}{kind}{a.after}"
    if a.unit:
        u = a.unit
        if country == "US":
            line += rng.choice((f", Apt {u}", f" Apt {u}", f" #{u}", f", Unit {u}"))
        else:
            line = f"Flat {u}, {line}" if rng.random() < 0.7 else f"{u}/{line}"
    if country in ("DE", "FR") and rng.random() < ADDRESS_FOLD:
        line = fold_ascii(line)
    return case_space(rng, line, ADDRESS_CASE, SPACE)


def city(rng: Random, c: City, *, pinyin: bool = False) -> str:
    if c.country == "CN":
        if pinyin:
            return c.alt
        return c.name + ("市" if rng.random() < CN_SUFFIX else "")
    name = c.alt if c.alt and rng.random() < CITY_ALIAS else c.name
    if c.country in ("DE", "FR") and rng.random() < ADDRESS_FOLD:
        name = fold_ascii(name)
    return case_space(rng, name, ADDRESS_CASE, 0.0)


def state(rng: Random, c: City, *, pinyin: bool = False) -> str:
    if c.country == "US":
        return places.US_STATES[c.state] if rng.random() < STATE_FULL else c.state
    if c.country == "CN":
        full, py = places.CN_PROVINCES[c.state]
        return py if pinyin else full if rng.random() < CN_SUFFIX else c.state
    return ""


def postcode(rng: Random, a: Address, *, keyed: bool = False) -> str:
    if rng.random() < POSTCODE_MISSING:
        return ""
    code = a.postcode
    country = a.city.country
    if country == "US" and keyed and code[0] == "0" and rng.random() < ZIP_ZERO_DROPPED:
        return code.lstrip("0")
    if country == "GB" and rng.random() < GB_POSTCODE_MANGLED:
        return code.replace(" ", "") if rng.random() < 0.5 else code.lower()
    return code


def chinese_pinyin_address(rng: Random, p: Person) -> bool:
    """Whether this record writes a Chinese address in pinyin (web forms only)."""
    return p.country == "CN" and rng.random() < CN_ADDRESS_PINYIN
