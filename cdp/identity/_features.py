"""The comparable form of a record: one flat row of match keys per identity record.

The store hands the resolver identifiers as they were stored (normalised for
storage, not for matching); here each becomes the key the matcher compares:
order-insensitive, nickname-resolved and script-independent name tokens (so
王伟 = Wang Wei = Wei Wang and Bob Smith = Robert Smith), the e-mail *match*
key (plus-tags and Gmail dots removed), the E.164 phone, the birth date with
well-known placeholders dropped, the street line (abbreviations written out)
and its street name without house or flat numbers, postcode/city/country, and the account id
(``user_id``: a login or customer number issued to one person, scored as
evidence, exact or one keystroke apart, rather than only joined on exactly;
loyalty cards are left out because households share them). The same function
feeds the batch model (splink) and the in-process scorer for single records,
so both see identical keys.

Rows live in memory only; nothing here logs or persists values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import jellyfish

from cdp.identity._names import is_pinyin
from cdp.identity._nicknames import canonical_first_name
from cdp.identity.normalize import (
    normalize_city,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    normalize_street,
)

__all__ = [
    "FEATURE_COLUMNS",
    "PLACEHOLDER_BIRTH_DATES",
    "DomainCorrector",
    "assign_name_frequencies",
    "email_domains",
    "feature_row",
    "feature_rows",
    "name_frequency_bucket",
]

FEATURE_COLUMNS: Final = (
    "unique_id",
    "given",
    "given_initial",
    "family",
    "name_key",
    "name_freq",
    "email_key",
    "phone",
    "dob",
    "dob_year",
    "dob_swapped",
    "street",
    "street_name",
    "postcode",
    "city",
    "country",
    "account_id",
)
"""Columns of a feature row, in order (all strings or None, except ``name_freq``)."""

MIN_POPULAR_DOMAIN: Final = 20
"""Records that must use an e-mail domain before typos are corrected towards it."""

_COMPARED: Final = ("family", "given_initial", "email_key", "phone", "dob", "street", "postcode", "city")

PLACEHOLDER_BIRTH_DATES: Final = frozenset({"1900-01-01", "1901-01-01", "1970-01-01"})
"""System default dates that forms and tills fill in when nobody asked: not evidence."""

# Romanisations of the same Chinese surname (Cantonese, Wade-Giles, older spellings) → pinyin.
_SURNAME_VARIANTS: Final[dict[str, str]] = {
    "wong": "wang",
    "chan": "chen",
    "cheung": "zhang",
    "chang": "zhang",
    "lau": "liu",
    "lee": "li",
    "ng": "wu",
    "ho": "he",
    "chow": "zhou",
    "tsang": "zeng",
    "leung": "liang",
    "kwok": "guo",
    "yeung": "yang",
    "hui": "xu",
    "tse": "xie",
    "lam": "lin",
    "tang": "deng",
    "mak": "mai",
    "fung": "feng",
    "chiu": "zhao",
    "lyu": "lu",
    "lv": "lu",
}


def name_frequency_bucket(people: int) -> str:
    """The frequency class of a name from how many distinct people carry it."""
    if people <= 2:
        return "rare"
    if people <= 10:
        return "common"
    return "very_common"


def _family_key(family: str, chinese: bool) -> str:
    if not chinese:
        return family
    return " ".join(_SURNAME_VARIANTS.get(token, token) for token in family.split())


class DomainCorrector:
    """Mends mistyped e-mail domains (gmial.com) towards the popular domains of the data.

    A domain is popular when at least :data:`MIN_POPULAR_DOMAIN` records use
    it; any other domain within two edits of a popular one is read as that one
    (the closest, then the most used). Only popular domains are kept (in the
    saved model too): they are mail providers, not anybody's identifier.
    """

    def __init__(self, popular: Mapping[str, int]) -> None:
        self.popular = dict(popular)
        self._cache: dict[str, str] = {}

    @classmethod
    def from_domains(cls, domains: Iterable[str]) -> DomainCorrector:
        counts: dict[str, int] = {}
        for domain in domains:
            counts[domain] = counts.get(domain, 0) + 1
        return cls({d: n for d, n in counts.items() if n >= MIN_POPULAR_DOMAIN})

    def correct(self, domain: str) -> str:
        if domain in self.popular or len(domain) < 6:
            return domain
        cached = self._cache.get(domain)
        if cached is None:
            best: tuple[int, int, str] | None = None
            for candidate, count in self.popular.items():
                if abs(len(candidate) - len(domain)) > 2:
                    continue
                distance = jellyfish.levenshtein_distance(domain, candidate)
                if distance <= 2 and (best is None or (distance, -count, candidate) < best):
                    best = (distance, -count, candidate)
            cached = best[2] if best else domain
            if len(self._cache) < 100_000:
                self._cache[domain] = cached
        return cached


def _email_key(value: object, domains: DomainCorrector | None) -> str | None:
    email = normalize_email(value) if value else None
    if email is None:
        return None
    if domains is None:
        return email.match_key
    local, _, domain = email.match_key.partition("@")
    return f"{local}@{domains.correct(domain)}"


def feature_row(record: Mapping[str, Any], domains: DomainCorrector | None = None) -> dict[str, Any]:
    """One record's match keys (see the module docstring); ``name_freq`` is filled in later."""
    country = normalize_country(record.get("country")) if record.get("country") else None
    name = normalize_name(record.get("given_name"), record.get("family_name"), country=country)
    given = family = name_key = given_initial = None
    if name is not None:
        chinese = name.script == "han" or country == "CN" or all(is_pinyin(t) for t in name.given.split())
        canonical_given = name.given_canonical.replace(" ", "")
        family = _family_key(name.family.replace(" ", ""), chinese) or None
        given = canonical_given or None
        given_initial = given[0] if given else None
        # Every token is read as a possible nickname, family ones too: a form that swapped the
        # fields ("Steinert, Jack") then keeps the key of "Jack Steinert" (both become "john").
        tokens = sorted(
            [canonical_first_name(t) for t in name.given.split()]
            + [canonical_first_name(_family_key(t, chinese)) for t in name.family.split()]
        )
        name_key = " ".join(tokens) or None
        if given is not None and len(given) == 1:  # an initial is not a given name
            given = None
            name_key = None
    email_key = _email_key(record.get("email"), domains)
    phone = normalize_phone(record.get("phone"), country) if record.get("phone") else None
    dob_raw = record.get("date_of_birth")
    dob = str(dob_raw)[:10] if dob_raw and str(dob_raw)[:10] not in PLACEHOLDER_BIRTH_DATES else None
    dob_swapped = f"{dob[:4]}-{dob[8:10]}-{dob[5:7]}" if dob and dob[8:10] <= "12" else None
    street = normalize_street(record.get("street")) if record.get("street") else None
    postcode = normalize_postcode(record.get("postcode"), country) if record.get("postcode") else None
    city = normalize_city(record.get("city")) if record.get("city") else None
    account = str(record.get("user_id") or "").strip().lower() or None
    return {
        "unique_id": str(record["record_id"]),
        "given": given,
        "given_initial": given_initial,
        "family": family,
        "name_key": name_key,
        "name_freq": "rare",
        "email_key": email_key,
        "phone": phone,
        "dob": dob,
        "dob_year": dob[:4] if dob else None,
        "dob_swapped": dob_swapped,
        "street": street,
        "street_name": " ".join(t for t in street.split() if not any(c.isdigit() for c in t)) or None
        if street
        else None,
        "postcode": postcode,
        "city": city,
        "country": country,
        "account_id": account,
    }


def email_domains(records: Iterable[Mapping[str, Any]]) -> DomainCorrector:
    """The domain corrector learnt from the e-mail addresses of ``records``."""
    keys = (_email_key(r.get("email"), None) for r in records)
    return DomainCorrector.from_domains(k.partition("@")[2] for k in keys if k)


def feature_rows(records: Sequence[Mapping[str, Any]], domains: DomainCorrector | None = None) -> list[dict[str, Any]]:
    """Feature rows for the records that carry at least one compared field."""
    rows = [feature_row(r, domains) for r in records]
    return [r for r in rows if any(r[c] is not None for c in _COMPARED)]


def assign_name_frequencies(rows: Sequence[dict[str, Any]], people: Mapping[str, str]) -> None:
    """Set each row's ``name_freq`` from how many people (``record id -> cluster``) carry its name."""
    carriers: dict[str, set[str]] = {}
    for row in rows:
        if row["name_key"]:
            carriers.setdefault(row["name_key"], set()).add(people.get(row["unique_id"], row["unique_id"]))
    for row in rows:
        row["name_freq"] = name_frequency_bucket(len(carriers[row["name_key"]])) if row["name_key"] else "rare"
