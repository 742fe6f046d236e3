"""How the rows of one profile's records become its result row in a read.

Why it exists: ``read_profiles`` (``_profiles.py``) fetches rows and hands them out, here each
profile's rows are turned into what the policy lets the reader see: the person's data key
looked up and unwrapped, only the needed fields decrypted, survivorship over several records,
the consent row filter and the masks. The work is per person and pure (memory in, rows out),
so a bulk read can share it with a forked child (``_parallel.py``).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cdp.access._core import StoreCore
from cdp.crypto import FieldCipher
from cdp.crypto.fields import RowDecryptor, row_values_reader
from cdp.crypto.keyring import FileKeyring
from cdp.model import CLEAR_FIELDS
from cdp.policy import Decision
from cdp.policy.masking import age_band, age_on, text_treatment, treatment_function

RECTIFICATION_SOURCE = "rectification"

_EPOCH = datetime(1970, 1, 1)
_TIMING_FIELDS = frozenset({"sources", "record_count", "first_seen", "last_seen"})
# Positions in the rows of _profile_records: fixed columns, then CLEAR_FIELDS, then the encrypted ones asked for.
# _SEEN is when the record happened (occurred_at, else received_at), as the driver returns it.
_PROFILE, _ID, _SOURCE, _KEY, _SEEN = range(5)
_CLEAR_AT = {name: 5 + i for i, name in enumerate(CLEAR_FIELDS)}
_ENCRYPTED_AT = 5 + len(CLEAR_FIELDS)


def _pick(
    candidates: list[tuple[str, datetime | None, str]], rule: str, trusted: Sequence[str]
) -> tuple[str, str] | None:
    """Survivorship: choose one (value, source) among (value, time, source) candidates."""
    if not candidates:
        return None
    if rule == "most_frequent":
        counts = Counter(c[0] for c in candidates)
        best = max(candidates, key=lambda c: (counts[c[0]], (c[1] or _EPOCH).replace(tzinfo=None)))
    elif rule == "longest":
        best = max(candidates, key=lambda c: (len(c[0]), (c[1] or _EPOCH).replace(tzinfo=None)))
    elif rule == "most_trusted":
        rank = {s: i for i, s in enumerate(trusted)}
        best = min(
            candidates, key=lambda c: (rank.get(c[2], len(rank)), -((c[1] or _EPOCH).replace(tzinfo=None)).timestamp())
        )
    else:  # most_recent
        best = max(candidates, key=lambda c: (c[1] or _EPOCH).replace(tzinfo=None))
    return best[0], best[2]


def _age_band_of(date_of_birth: str | None, today: date) -> str | None:
    if not date_of_birth:
        return None
    try:
        return age_band(age_on(date.fromisoformat(date_of_birth), today))
    except ValueError:
        return None


def _mask_function(treatment: str, field: str) -> Callable[[Any], Any] | None:
    """The treatment of one field of the golden record. Its values are text but for the record
    count, so text masks are called directly: one call per value, the field's branch chosen once."""
    return treatment_function(treatment, field) if field == "record_count" else text_treatment(treatment, field)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large read builds many small objects (they
    hold no cycles); without this, full collections make big reads grow worse than linearly."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _no_blob(_key_id: str) -> bytes | None:
    return None


def _no_unwrap(_blob: bytes, _aad: bytes) -> bytes:
    raise KeyError("no wrapped key was fetched for this read")


def _seen(row: Any) -> datetime:
    """When the record happened. Rows come straight from the driver: SQLite gives DATETIME as text."""
    value = row[_SEEN]
    return datetime.fromisoformat(value) if value.__class__ is str else value


def _time(row: Any) -> datetime:
    return _seen(row).replace(tzinfo=None)


def _survivorship_order(records: list[Any], rule: str, trusted: Sequence[str]) -> list[Any]:
    """Records in the order the rule prefers them (so most_recent/most_trusted decrypt one value)."""
    if rule == "most_trusted":
        rank = {s: i for i, s in enumerate(trusted)}
        return sorted(records, key=lambda r: (rank.get(r[_SOURCE], len(rank)), -_time(r).timestamp()))
    return sorted(records, key=_time, reverse=True)


def _add_timings(profile: dict[str, Any], records: list[Any], asked: frozenset[str]) -> None:
    """The profile's sources, record count and first/last seen: those of them that were asked for."""
    if "sources" in asked:
        profile["sources"] = ",".join(sorted({r[_SOURCE] for r in records}))
    if "record_count" in asked:
        profile["record_count"] = len(records)
    if "first_seen" in asked or "last_seen" in asked:
        times = [_seen(r) for r in records]
        profile["first_seen"] = min(times).isoformat() if times else None
        profile["last_seen"] = max(times).isoformat() if times else None


@dataclass(frozen=True)
class ReadPlan:
    """What one read asked for and may see: the same for every profile it assembles."""

    decision: Decision
    readable: Sequence[str]  # the fields asked for that the policy allows, in the order asked
    identity_fields: Sequence[str]  # the encrypted fields fetched (readable, or needed for an age band)
    needed: Sequence[str]  # the fields decoded from the rows (the country too: the consent filter reads it)
    plan: Sequence[tuple[str, Callable[[Any], Any] | None]]  # (field, mask) of each readable field
    consent: dict[str, str] | None  # profile id -> consent status for the purpose; None: no consent filter
    today: date
    with_provenance: bool

    @property
    def timings(self) -> frozenset[str]:
        return _TIMING_FIELDS & frozenset(self.readable)

    @property
    def age_bands(self) -> bool:
        return "age_band" in self.readable


class RowAssemblyMixin(StoreCore):
    def _consent_allows(self, decision: Decision, status: str | None, country: str | None) -> bool:
        if decision.consent_purpose is None:
            return True
        if status == "granted":
            return True
        if status in ("denied", "withdrawn"):
            return False
        jurisdiction = self.policy.policy.jurisdiction_of(country)
        return jurisdiction is None or jurisdiction not in decision.opt_in_jurisdictions

    def _data_keys(
        self, key_ids: Iterable[str], by_kek: dict[str, dict[str, bytes]] | None = None
    ) -> Callable[[str], bytes | None]:
        """The data keys of one read: a function key id -> data key, None for a shredded key.

        The wrapped keys are fetched from the key store for every read, never taken from the
        keys this store holds in memory for writes: a key shredded by another process stops
        decrypting at the next read. With the file keyring a key is unwrapped when its person is
        assembled, in whichever process assembles them, and dropped with that person's row; an
        external keyring (KMS) is called from this process only, so its keys are unwrapped here,
        up front, and live as long as the read.
        """
        if not isinstance(self.keyring, FileKeyring):
            wrapped = self.keystore.get(key_ids)
            unwrapped = {key_id: self.keyring.unwrap(blob, aad=key_id.encode()) for key_id, blob in wrapped.items()}
            return unwrapped.get
        unwrap = self.keyring.unwrap_blob
        by_kek = self.keystore.blobs_by_kek(key_ids) if by_kek is None else by_kek
        if len(by_kek) == 1:  # the usual case: every key wrapped under the current KEK
            ((kek_id, blobs),) = by_kek.items()
            get = blobs.get

            def data_key(key_id: str) -> bytes | None:
                blob = get(key_id)
                return None if blob is None else unwrap(kek_id, blob, key_id.encode())

            return data_key

        def data_key_any_kek(key_id: str) -> bytes | None:  # during a KEK rotation
            for kek_id, blobs in by_kek.items():
                blob = blobs.get(key_id)
                if blob is not None:
                    return unwrap(kek_id, blob, key_id.encode())
            return None

        return data_key_any_kek

    def _field_readers(
        self,
        needed: Sequence[str],
        identity_fields: Sequence[str],
        cipher_of: Callable[[str], FieldCipher | None],
    ) -> list[tuple[str, Callable[[Any], str | None]]]:
        """For each needed field, a function giving its plaintext from a row of :meth:`_profile_records`.

        Encrypted fields are decrypted with the record's data key (``cipher_of`` its key id); a
        shredded key (erased person) reads as no value. Clear fields come back as text. Used where
        a profile has several records, so that survivorship decrypts only the values it weighs.
        """
        encrypted_at = {name: _ENCRYPTED_AT + i for i, name in enumerate(identity_fields)}

        def clear(position: int) -> Callable[[Any], str | None]:
            def read(row: Any) -> str | None:
                value = row[position]
                return str(value) if value else None

            return read

        def encrypted(name: str, position: int) -> Callable[[Any], str | None]:
            def read(row: Any) -> str | None:
                token = row[position]
                if token is None:
                    return None
                cipher = cipher_of(row[_KEY])
                return cipher.decrypt(token, record_id=row[_ID], field=name) if cipher is not None else None

            return read

        return [
            (name, encrypted(name, encrypted_at[name]) if name in encrypted_at else clear(_CLEAR_AT[name]))
            for name in needed
        ]

    def _row_decoder(
        self, needed: Sequence[str], identity_fields: Sequence[str], data_key_of: Callable[[str], bytes | None]
    ) -> Callable[[Any], dict[str, Any]]:
        """A function giving field -> plaintext for every needed field of one row that has a value.

        The same values as :meth:`_field_readers`, for a profile with a single record: its
        encrypted fields are decrypted together under the person's key (``data_key_of`` its key
        id), which is unwrapped for that row only and not kept.
        """
        encrypted = [(name, _ENCRYPTED_AT + i) for i, name in enumerate(identity_fields) if name in needed]
        clear = [(name, _CLEAR_AT[name]) for name in needed if name not in identity_fields]
        decrypt_row = RowDecryptor(encrypted).decrypt_row if encrypted else None

        def decode(row: Any) -> dict[str, Any]:
            # No key (shredded: an erased person) reads as no value; a row with no token unwraps nothing.
            out: dict[str, Any] = decrypt_row(data_key_of, row[_KEY], row[_ID], row) if decrypt_row is not None else {}
            for name, position in clear:
                value = row[position]
                if value:
                    out[name] = value if value.__class__ is str else str(value)
            return out

        return decode

    def _single_record_reader(
        self,
        by_kek: dict[str, dict[str, bytes]],
        needed: Sequence[str],
        identity_fields: Sequence[str],
        plan: Sequence[tuple[str, Callable[[Any], Any] | None]],
        decode: Callable[[Any], dict[str, Any]],
        decision: Decision,
        consent: dict[str, str] | None,
    ) -> Callable[[str, Any], dict[str, Any] | None]:
        """``read(profile_id, row)``: the result row of a profile with a single record (decrypted,
        consent-filtered, masked), or None when the consent filter excludes it.

        The same values as :meth:`_row_decoder` followed by the filter and the masks in
        ``read_profiles``, in one function per person: most profiles of a bulk read have one
        record, and the layers of calls cost about as much as the AES-GCM work. A row the fast
        decryption does not take (see :func:`row_values_reader`) is read by ``decode``, so its
        values, or the error it raises, are the reference path's. Only for the file keyring
        with every key under one KEK (``by_kek``: KEK id -> key id -> wrapped key).
        """
        encrypted = [(name, _ENCRYPTED_AT + i) for i, name in enumerate(identity_fields) if name in needed]
        blob_of: Callable[[str], bytes | None]
        if by_kek:
            ((kek_id, blobs),) = by_kek.items()
            assert isinstance(self.keyring, FileKeyring)  # by_kek is only fetched for it
            read_values = row_values_reader(encrypted, self.keyring.blob_unwrapper(kek_id))
            blob_of = blobs.get
        else:  # no key asked for, or none left: every token reads as no value
            read_values = row_values_reader(encrypted, _no_unwrap)
            blob_of = _no_blob
        at = {name: i for i, (name, _) in enumerate(encrypted)}
        # Every result row starts as a copy of this one (keys in the order asked, values None), so
        # a field without a value costs nothing and the keys keep the reference path's order.
        template: dict[str, Any] = dict.fromkeys(("profile_id", *(name for name, _ in plan)))
        # (index among the decrypted values, name, mask) of the encrypted fields; (position, name,
        # mask) of the clear ones.
        decrypted = tuple((at[name], name, mask) for name, mask in plan if name in at)
        clear = tuple((_CLEAR_AT[name], name, mask) for name, mask in plan if name not in at)
        country_at, key_at, id_at = _CLEAR_AT["country"], _KEY, _ID
        allowed_by_country: dict[str | None, bool] = {}  # consent row filter for people without a choice
        consent_allows = self._consent_allows

        def read(profile_id: str, row: Any) -> dict[str, Any] | None:
            key_id = row[key_at]
            try:
                values = read_values(blob_of(key_id), key_id, row[id_at], row)
            except Exception:
                golden = decode(row)
                values = [golden.get(name) for name, _ in encrypted]
            if consent is not None:
                status = consent.get(profile_id)
                if status != "granted":
                    country = row[country_at]
                    country = (country if country.__class__ is str else str(country)) if country else None
                    if status is None:
                        allowed = allowed_by_country.get(country)
                        if allowed is None:
                            allowed = allowed_by_country[country] = consent_allows(decision, None, country)
                    else:
                        allowed = consent_allows(decision, status, country)
                    if not allowed:
                        return None
            result = template.copy()
            result["profile_id"] = profile_id
            for index, name, mask in decrypted:
                value = values[index]
                if value is not None:
                    result[name] = value if mask is None else mask(value)
            for position, name, mask in clear:
                value = row[position]
                if value:
                    if value.__class__ is not str:
                        value = str(value)
                    result[name] = value if mask is None else mask(value)
            return result

        return read

    def _golden(
        self,
        records: list[Any],
        readers: list[tuple[str, Callable[[Any], str | None]]],
        timings: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The golden record of a profile with several records: one value per field by its
        survivorship rule, and the source of each."""
        profile: dict[str, Any] = {}
        provenance: dict[str, str] = {}
        orders: dict[str, list[Any]] = {}
        rectified = [r for r in records if r[_SOURCE] == RECTIFICATION_SOURCE]
        for name, read in readers:
            rule = self.settings.survivorship.get(name, "most_recent")
            order_key = "most_trusted" if rule == "most_trusted" else "most_recent"
            if order_key not in orders:
                orders[order_key] = _survivorship_order(records, rule, self.settings.trusted_sources)
            ordered = orders[order_key]
            first_only = rule in ("most_recent", "most_trusted")
            candidates: list[tuple[str, datetime | None, str]] = []
            # A rectification (data-subject request) wins over every source value.
            for group, only_first in ((rectified, True), (ordered, first_only)):
                for row in group:
                    value = read(row)
                    if value:
                        candidates.append((value, _seen(row), row[_SOURCE]))
                        if only_first:
                            break
                if candidates:
                    break
            chosen = _pick(candidates, rule, self.settings.trusted_sources)
            if chosen is not None:
                profile[name], provenance[name] = chosen
        if timings:
            _add_timings(profile, records, timings)
        return profile, provenance

    def _assembler(
        self, grouped: dict[str, list[Any]], read: ReadPlan, by_kek: dict[str, dict[str, bytes]] | None = None
    ) -> Callable[[Sequence[str]], tuple[list[dict[str, Any]], int]]:
        """``assemble(profile_ids)``: the result rows of these profiles of ``grouped`` (profile
        id -> its rows), and how many the consent filter excluded.

        The wrapped keys of the rows are fetched here (unless ``by_kek`` already holds them: KEK
        id -> key id -> wrapped key, file keyring only); each is unwrapped when its person is
        assembled, in whichever process assembles them, and dropped with that person's row.
        """
        decision, plan, consent, timings = read.decision, read.plan, read.consent, read.timings
        identity_fields, needed, with_provenance = read.identity_fields, read.needed, read.with_provenance
        # Keys are unwrapped only for rows with a value in an encrypted column asked for (an age
        # band read of people without a birth date unwraps nothing).
        key_ids = {r[_KEY] for rows in grouped.values() for r in rows} if identity_fields else set()
        if not isinstance(self.keyring, FileKeyring):
            by_kek = None
        elif by_kek is None:
            by_kek = self.keystore.blobs_by_kek(key_ids)
        data_key_of = self._data_keys(key_ids, by_kek)
        decode = self._row_decoder(needed, identity_fields, data_key_of)
        single = None
        if by_kek is not None and len(by_kek) <= 1 and not (with_provenance or timings or read.age_bands):
            single = self._single_record_reader(by_kek, needed, identity_fields, plan, decode, decision, consent)

        def assemble(profile_ids: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
            ciphers: dict[str, FieldCipher | None] = {}  # this read's, for people with several records

            def cipher_of(key_id: str) -> FieldCipher | None:
                if key_id not in ciphers:
                    data_key = data_key_of(key_id)
                    ciphers[key_id] = None if data_key is None else FieldCipher(data_key, key_id)
                return ciphers[key_id]

            readers: list[tuple[str, Callable[[Any], str | None]]] | None = None
            allowed_by_country: dict[str | None, bool] = {}  # consent row filter for people without a choice
            out: list[dict[str, Any]] = []
            excluded = 0
            with _collector_paused():
                for profile_id in profile_ids:
                    records = grouped[profile_id]
                    if len(records) == 1 and single is not None:
                        fast = single(profile_id, records[0])
                        if fast is None:
                            excluded += 1
                        else:
                            out.append(fast)
                        continue
                    if len(records) == 1:
                        row = records[0]
                        golden = decode(row)
                        provenance = dict.fromkeys(golden, row[_SOURCE]) if with_provenance else {}
                        if timings:
                            _add_timings(golden, records, timings)
                    else:
                        if readers is None:
                            readers = self._field_readers(needed, identity_fields, cipher_of)
                        golden, provenance = self._golden(records, readers, timings)
                    if consent is not None:
                        status = consent.get(profile_id)
                        if status is None:
                            country = golden.get("country")
                            allowed = allowed_by_country.get(country)
                            if allowed is None:
                                allowed = allowed_by_country[country] = self._consent_allows(decision, None, country)
                        else:
                            allowed = self._consent_allows(decision, status, golden.get("country"))
                        if not allowed:
                            excluded += 1
                            continue
                    if read.age_bands:
                        golden["age_band"] = _age_band_of(golden.get("date_of_birth"), read.today)
                    result: dict[str, Any] = {"profile_id": profile_id}
                    for name, mask in plan:
                        value = golden.get(name)
                        result[name] = value if mask is None or value is None else mask(value)
                    if with_provenance:
                        result["_provenance"] = {k: v for k, v in provenance.items() if k in read.readable}
                    out.append(result)
            return out, excluded

        return assemble
