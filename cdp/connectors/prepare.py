"""Normalising a connector's raw identity values before they are stored.

Connectors hand over identifiers as they found them; here each is normalised
by the normaliser registered for its field type (``cdp_normalizers`` hook),
split into what is stored (encrypted) and what is matched on (blind-indexed
match keys). A value that cannot be normalised rejects the record, naming
the field, so it lands in quarantine rather than being silently dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from cdp._exceptions import RecordRejected
from cdp.model import IncomingRecord

Normalizers = Mapping[str, Callable[..., Any]]
_SPACES = re.compile(r"\s+")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_COMPOUND_SURNAMES = frozenset(
    {"欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "司徒", "长孙", "宇文"}
)


CACHED_NORMALIZERS = ("email", "phone", "name", "date_of_birth", "postcode", "country")
CACHE_LIMIT = 50_000


class _Cached:
    """A normaliser with a bounded memo: the same raw value (an email on every order) is normalised once.

    Normalisers are pure functions of their arguments. The memo lives as long
    as the runner that made it (plaintext stays in memory only, like the
    records themselves) and is emptied whenever it reaches ``CACHE_LIMIT``.
    """

    __slots__ = ("function", "memo")

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.memo: dict[Any, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(kwargs.items())) if kwargs else args
        try:
            return self.memo[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument: no memo
            return self.function(*args, **kwargs)
        value = self.function(*args, **kwargs)
        if len(self.memo) >= CACHE_LIMIT:
            self.memo.clear()
        self.memo[key] = value
        return value


def cached_normalizers(normalizers: Normalizers) -> dict[str, Callable[..., Any]]:
    """``normalizers`` with the built-in field types memoised (see :class:`_Cached`)."""
    return {
        name: _Cached(function) if name in CACHED_NORMALIZERS else function for name, function in normalizers.items()
    }


def clean(value: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()


def split_full_name(full: str, normalizers: Normalizers, country: str | None) -> tuple[str, str]:
    """Split a display name into (given, family), keeping the original script."""
    name = clean(full)
    if not name:
        return "", ""
    compact = name.replace(" ", "")
    if _HAN.search(compact) and len(compact) <= 6:
        size = 2 if compact[:2] in _COMPOUND_SURNAMES else 1
        return compact[size:], compact[:size]
    if "," in name:
        family, _, given = name.partition(",")
        return clean(given), clean(family)
    parts = name.split(" ")
    if len(parts) == 1:
        return parts[0], ""
    normalised = normalizers["name"](full=name, country=country)
    first_key = unicodedata.normalize("NFKD", parts[0]).encode("ascii", "ignore").decode().casefold()
    if (
        normalised is not None
        and normalised.family
        and normalised.family == first_key
        and normalised.given != first_key
    ):
        return " ".join(parts[1:]), parts[0]
    return " ".join(parts[:-1]), parts[-1]


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (a NUL, an unpaired surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (not valid Unicode)"
    return None


def _check_storable(record: IncomingRecord) -> None:
    """Reject text no database column can hold (PostgreSQL refuses NUL; UTF-8 refuses lone surrogates)."""
    # Fast path, exact: the texts joined are storable only if each one is (surrogates never pair up
    # across a join in Python text); the field is looked for only when one is not.
    values: list[Any] = [record.source_record_id, record.anonymous_id, *record.identity.values()]
    for event in record.events:
        values += (event.event_name, event.currency, event.channel, event.store_id, event.category)
        values += event.properties.values()
        values += event.properties.keys()
    for consent in record.consents:
        values += (consent.purpose, consent.source, consent.notice_version)
    if unstorable("".join([v for v in values if isinstance(v, str)])) is None:
        return
    rid = record.source_record_id
    texts: list[tuple[str, Any]] = [("record id", rid), ("anonymousId", record.anonymous_id)]
    texts += list(record.identity.items())
    for event in record.events:
        texts += [
            ("event", event.event_name),
            ("currency", event.currency),
            ("channel", event.channel),
            ("store_id", event.store_id),
            ("category", event.category),
        ]
        texts += [(f"properties.{k}", v) for k, v in event.properties.items()]
        texts += [(f"properties.{k}", k) for k in event.properties]
    for consent in record.consents:
        texts += [("consent", consent.purpose), ("consent", consent.source), ("consent", consent.notice_version)]
    for name, value in texts:
        if isinstance(value, str) and (reason := unstorable(value)):
            raise RecordRejected(reason, record="(unprintable id)" if unstorable(rid) else rid, field=name)


def normalise_record(record: IncomingRecord, normalizers: Normalizers, default_region: str) -> IncomingRecord:
    """Normalise ``record.identity`` in place of the raw values; fill ``match_keys``."""
    _check_storable(record)
    raw = record.identity
    rid = record.source_record_id
    out: dict[str, str] = {}
    keys: dict[str, str] = {}
    country_raw = raw.get("country")
    country: str | None = None
    if country_raw:
        country = normalizers["country"](country_raw)
        if country is None:
            raise RecordRejected("is not a recognised country", record=rid, field="country")
        out["country"] = country
    if raw.get("email"):
        email = normalizers["email"](raw["email"])
        if email is None:
            raise RecordRejected("is not a valid email address", record=rid, field="email")
        out["email"] = email.address
        keys["email"] = email.match_key
    if raw.get("phone"):
        phone = normalizers["phone"](raw["phone"], country or record.region_hint or default_region)
        if phone is None:
            raise RecordRejected("is not a valid phone number", record=rid, field="phone")
        out["phone"] = phone
        keys["phone"] = phone
    given = clean(raw.get("given_name", ""))
    family = clean(raw.get("family_name", ""))
    if raw.get("full_name") and not (given or family):
        given, family = split_full_name(raw["full_name"], normalizers, country)
    if given:
        out["given_name"] = given[:200]
    if family:
        out["family_name"] = family[:200]
    if raw.get("date_of_birth"):
        born = normalizers["date_of_birth"](raw["date_of_birth"], country=country)
        if born is None:
            raise RecordRejected("is not a valid date of birth", record=rid, field="date_of_birth")
        out["date_of_birth"] = born.isoformat()
    if raw.get("postcode"):
        postcode = normalizers["postcode"](raw["postcode"], country)
        if postcode:
            out["postcode"] = postcode[:20]
    if raw.get("city"):
        out["city"] = clean(raw["city"])[:100]
    if raw.get("state"):
        out["state"] = clean(raw["state"])[:100]
    if raw.get("street"):
        out["street"] = clean(raw["street"])[:300]
    if raw.get("gender"):
        out["gender"] = clean(raw["gender"]).casefold()[:20]
    if raw.get("loyalty_id"):
        loyalty = clean(raw["loyalty_id"])
        out["loyalty_id"] = loyalty[:100]
        keys["loyalty_id"] = loyalty.replace(" ", "").upper()
    if raw.get("user_id"):
        out["user_id"] = raw["user_id"][:200]
        keys["user_id"] = raw["user_id"]
    record.identity = out
    record.match_keys = keys
    return record
