"""Making normalised records ready for storing: the rows of an ingest, without the database.

Why this module exists: everything an ingest does per record that needs no
database (record ids, the payload's JSON, blind indexes, the rows of
``events``, ``consents`` and ``blind_indexes``) is done here, so that an ingest
worker process (``cdp.connectors._worker``) or the ``/v1/batch`` parser process
(``cdp.api.collect``) can do it while the storing process writes the previous
batch. The storing process (:mod:`cdp.access._ingest`) then only dedupes,
finds or creates each person's key, encrypts and inserts.

The output is plain tuples and bytes (:data:`Ready`), not record objects:
a batch of them pickles and unpickles in a fraction of the time objects took.
"""

from __future__ import annotations

import functools
import json
import marshal
import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Dialect

from cdp.access import _tables as t
from cdp.access._bulk import compiled_insert
from cdp.access._core import ordered_ids
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS, IncomingRecord, strip_sensitive

KEY_SHARING_KINDS = ("email", "loyalty_id", "user_id", "anonymous_id")
DIGEST_MEMO_SIZE = 200_000  # blind indexes a run's RowMaker remembers (see RowMaker.__init__)

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, sort_keys=True).encode
_FAST_ENCODE = msgspec.json.Encoder(order="sorted").encode
_FAST_DECODE = msgspec.json.Decoder().decode
_FAST_FAILS = (msgspec.MsgspecError, TypeError, ValueError, OverflowError, RecursionError)

RECORD_COLUMNS = (
    "id",
    "source",
    "stream",
    "source_record_id",
    "idempotency_key",
    "received_at",
    "occurred_at",
    "key_id",
    "kind",
    "payload_enc",
    *(f"{name}_enc" for name in IDENTITY_FIELDS),
    *CLEAR_FIELDS,
)
EVENT_COLUMNS = (
    "id",
    "record_id",
    "source",
    "event_type",
    "event_name",
    "occurred_at",
    "anonymous_key",
    "user_key",
    "profile_id",
    "revenue",
    "currency",
    "channel",
    "store_id",
    "category",
    "properties",
)
CONSENT_COLUMNS = (
    "record_id",
    "subject_key",
    "purpose",
    "status",
    "basis",
    "source",
    "notice_version",
    "jurisdiction",
    "recorded_at",
    "evidence",
)
INDEX_COLUMNS = ("record_id", "kind", "digest")


def json_bytes(value: Any) -> bytes:
    """``value`` as compact JSON with sorted keys, UTF-8.

    msgspec encodes about eight times faster than :mod:`json`; its text is used only when it
    decodes back to a value equal to ``value``, which is exactly when :mod:`json` would have
    stored the same value (JSON types only, finite floats, text keys). Anything else (a NaN,
    a datetime, a tuple, a non-text key) goes through :mod:`json` as before (``default=str``).
    """
    try:
        raw = _FAST_ENCODE(value)
        if _FAST_DECODE(raw) == value:
            return raw
    except _FAST_FAILS:
        pass
    return _ENCODE(value).encode("utf-8", "surrogatepass")


def payload_bytes(payload: Mapping[str, Any], sensitive: frozenset[str]) -> bytes:
    """The stored (then encrypted) form of a record's payload: UTF-8 JSON without special-category keys."""
    if not sensitive:
        return json_bytes(payload)
    keys = _quotable(sensitive)
    if keys is not None:
        # Most payloads hold no special-category key at all: then stripping changes nothing, and the
        # JSON shows it without walking the payload. A key is written between two quotes with no quote
        # inside, so splitting the lowered text at every quote yields every key, lowered, of every
        # nesting level as one piece (values too: a value equal to a key only costs the walk below).
        raw = json_bytes(payload)
        lowered = (
            raw.lower()
            if raw.isascii()
            else raw.decode("utf-8", "surrogatepass").lower().encode("utf-8", "surrogatepass")
        )
        if keys.isdisjoint(lowered.split(b'"')):
            return raw
    return json_bytes(strip_sensitive(payload, sensitive))


def payload_json(payload: Mapping[str, Any], sensitive: frozenset[str]) -> str:
    """:func:`payload_bytes` as text."""
    return payload_bytes(payload, sensitive).decode("utf-8", "surrogatepass")


@functools.cache
def _quotable(keys: frozenset[str]) -> frozenset[bytes] | None:
    """``keys`` as bytes when each is printable ASCII that JSON writes unescaped, else None.

    Only then does a lowered JSON text hold such a key wherever a key lowering to it does (non-ASCII
    lowering can depend on context, and escapes change the text).
    """
    if all(key.isascii() and key.isprintable() and '"' not in key and "\\" not in key for key in keys):
        return frozenset(key.encode() for key in keys)
    return None


def record_digests(record: IncomingRecord, index: Callable[[str, str], str]) -> dict[str, str]:
    """The blind indexes of a record's match keys and anonymous id, by kind."""
    digests = {kind: index(kind, value) for kind, value in record.match_keys.items() if value}
    if record.anonymous_id:
        digests["anonymous_id"] = index("anonymous_id", record.anonymous_id)
    return digests


def record_ids(count: int) -> list[str]:
    """New record ids, time-ordered (12 hex digits of milliseconds, then 48 random bits).

    Same shape as ``new_id("r")``; the time prefix makes primary-key inserts
    append to the B-tree instead of landing on random pages, which keeps large
    tables fast to write. The ids of one call are sorted (the random parts are
    as random as before), so a batch's records, events and index entries keyed
    by record id are appended in order too, not scattered over the last pages.
    """
    return ordered_ids("r", count)


# A record made ready for storing (RowMaker.make): plain tuples, text and bytes only. Positions:
READY_ID, READY_KEY = 0, 4  # record id (made when prepared), idempotency key (None: the record has no
# message id, and its (source, stream, source record id) is its key; see migration 0006)
READY_OCCURRED, READY_KIND, READY_PAYLOAD, READY_IDENTITY, READY_CLEAR = 5, 6, 7, 8, 9
READY_SHARING, READY_INDEXES, READY_EVENTS, READY_CONSENTS = 10, 11, 12, 13
# (id, source, stream, source record id, idempotency key, occurred_at, kind, payload as UTF-8 JSON bytes,
#  identity values in IDENTITY_FIELDS order or None when it has none, clear values in CLEAR_FIELDS order,
#  digests of the key-sharing identifiers, blind-index rows, event rows, consent rows)
Ready = tuple[Any, ...]


class RowMaker:
    """Turns normalised records into :data:`Ready` tuples: the rows of ``blind_indexes``, ``events``
    and ``consents`` complete, the ``records`` row without what needs the person's key.

    Given a SQLite ``dialect``, it also turns the event and consent rows and the records'
    ``occurred_at`` values into the driver's form (DATETIME text, JSON text, with the processors the insert
    itself would use), which the storing process then inserts as they are (:attr:`converted`).
    On other databases those values stay Python objects and are converted when inserted.
    """

    def __init__(
        self,
        sensitive: frozenset[str],
        index: Callable[[str, str], str],
        jurisdiction_of: Callable[[str | None, str | None], str | None],
        hash_evidence: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        dialect: Dialect | None = None,
        *,
        remember_digests: bool = False,
    ) -> None:
        self.sensitive = sensitive
        self.index = index
        # An ingest run meets the same identifiers again and again (a visitor's anonymous id on each of
        # their events, a customer's email on each purchase): with ``remember_digests`` their blind
        # indexes are computed once per run (at most DIGEST_MEMO_SIZE kept, then forgotten all at once).
        # Only for a maker that lives as long as one run (the runner's): the memo holds identifiers.
        self._digests: dict[tuple[str, str], str] | None = {} if remember_digests else None
        self.jurisdiction_of = jurisdiction_of
        self.hash_evidence = hash_evidence
        self.converted = dialect is not None and dialect.name == "sqlite"
        self._occurred: Callable[[Any], Any] | None = None
        self._revenue: Callable[[Any], Any] | None = None
        self._properties: Callable[[Any], Any] | None = None
        self._event_row: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        self._consent_row: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        if dialect is not None and self.converted:
            self._consent_row = compiled_insert(dialect, t.consents, CONSENT_COLUMNS).convert_row
            events = compiled_insert(dialect, t.events, EVENT_COLUMNS)
            self._occurred = compiled_insert(dialect, t.records, RECORD_COLUMNS).processor("occurred_at")
            if set(events.processor_of) <= {"occurred_at", "revenue", "properties"}:
                # The columns that need converting on SQLite, each converted directly (and the DATETIME
                # text of a record's own time made once for its record and events, which share the type).
                self._revenue = events.processor("revenue")
                self._properties = events.processor("properties")
            else:  # pragma: no cover - another typed column: convert every event row generically
                self._event_row = events.convert_row
        self._jurisdictions: dict[tuple[str | None, str | None], str | None] = {}

    def _remembered_index(self) -> Callable[[str, str], str]:
        memo, compute = self._digests, self.index
        if memo is None:
            return compute

        def index(kind: str, value: str) -> str:
            key = (kind, value)
            found = memo.get(key)
            if found is None:
                if len(memo) >= DIGEST_MEMO_SIZE:
                    memo.clear()
                found = memo[key] = compute(kind, value)
            return found

        return index

    def make(self, records: Sequence[IncomingRecord]) -> list[Ready]:
        index = self._remembered_index()
        sensitive = self.sensitive
        occurred_text = self._occurred
        revenue_value = self._revenue
        properties_text = self._properties
        event_row = self._event_row
        consent_row_of = self._consent_row
        if event_row is not None:
            occurred_text = None  # the generic conversion does the events; the record's time, below
        out: list[Ready] = []
        for record, record_id in zip(records, record_ids(len(records)), strict=True):
            digests = record_digests(record, index)
            identity = record.identity
            values = tuple([identity.get(name) or None for name in IDENTITY_FIELDS])
            has_identity = values != _NO_IDENTITY
            source = record.source
            anonymous_key = digests.get("anonymous_id")
            user_key = digests.get("user_id")
            occurred = record.occurred_at
            occurred_value = occurred if occurred is None or self._occurred is None else self._occurred(occurred)
            events: list[tuple[Any, ...]] = []
            for position, event in enumerate(record.events):
                when: Any = event.occurred_at
                revenue: Any = event.revenue
                properties: Any = event.properties or None
                if occurred_text is not None:
                    if when is occurred:
                        when = occurred_value
                    elif when is not None:
                        when = occurred_text(when)
                    if revenue is not None and revenue_value is not None:
                        revenue = revenue_value(revenue)
                    if properties is not None and properties_text is not None:
                        properties = properties_text(properties)
                row = (
                    f"{record_id}.{position}",
                    record_id,
                    source,
                    event.event_type,
                    event.event_name,
                    when,
                    anonymous_key,
                    user_key,
                    None,
                    revenue,
                    event.currency,
                    event.channel,
                    event.store_id,
                    event.category,
                    properties,
                )
                events.append(row if event_row is None else event_row(row))
            consents: list[tuple[Any, ...]] = []
            if record.consents:
                subject_key = next((digests[k] for k in KEY_SHARING_KINDS if k in digests), None)
                region = (identity.get("country"), identity.get("state"))
                if region not in self._jurisdictions:
                    self._jurisdictions[region] = self.jurisdiction_of(*region)
                for consent in record.consents:
                    consent_row = (
                        record_id,
                        subject_key,
                        consent.purpose,
                        consent.status,
                        consent.basis,
                        consent.source or source,
                        consent.notice_version,
                        self._jurisdictions[region],
                        record.occurred_at,  # None: the time it is stored (filled in by the storing process)
                        self.hash_evidence(consent.evidence),
                    )
                    consents.append(consent_row if consent_row_of is None else consent_row_of(consent_row))
            out.append(
                (
                    record_id,
                    source,
                    record.stream,
                    record.source_record_id[:200],
                    None if record.message_id is None else record.idempotency_key,
                    occurred_value,
                    "identity" if has_identity else "event",
                    payload_bytes(record.payload, sensitive),
                    values if has_identity else None,
                    tuple([identity.get(name) or None for name in CLEAR_FIELDS]),
                    tuple([d for k, d in digests.items() if k in _SHARING]),
                    tuple([(record_id, kind, digest) for kind, digest in digests.items()]),
                    events,
                    consents,
                )
            )
        return out


def pack_rows(rows: list[Ready]) -> tuple[bytes, bool]:
    """``rows`` serialised for another process of the same interpreter, and whether with marshal.

    With :mod:`marshal` where it can hold them: rows made for SQLite are only tuples, lists, text,
    bytes, numbers and None, which marshal writes and reads back equal (exact types only: anything
    else, such as the datetimes of rows made for PostgreSQL or a subclass, makes it refuse, and
    pickle is used). Reading marshal is faster than unpickling (0.46 against 0.73 CPU s per
    100,000 ``/v1/batch`` events), and it is the storing process that reads. Both ends must run
    the same interpreter (a forked or spawned child of the same executable), as marshal's format
    requires.
    """
    try:
        return marshal.dumps(rows), True
    except ValueError:  # an object marshal cannot write
        return pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL), False


def unpack_rows(packed: bytes, marshalled: bool) -> list[Ready]:
    """The rows :func:`pack_rows` serialised (only ever bytes from our own child process)."""
    rows: list[Ready] = marshal.loads(packed) if marshalled else pickle.loads(packed)  # noqa: S301, S302
    return rows


_NO_IDENTITY = (None,) * len(IDENTITY_FIELDS)
_SHARING = frozenset(KEY_SHARING_KINDS)
