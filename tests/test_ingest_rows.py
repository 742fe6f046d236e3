"""The fast paths of ingestion give exactly what the plain paths gave.

Why: ingestion encodes payloads and decodes input with msgspec where it can,
encrypts a record's fields in one call, runs its look-ups as driver SQL and
converts event rows for SQLite directly. Each of these is only allowed where
it stores the same thing as the slower path it replaced; these tests pin that
down, so a regression in any of them fails here.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cdp._exceptions import CryptoError, RecordRejected
from cdp.access import CustomerStore
from cdp.access import _tables as t
from cdp.access._bulk import compiled_insert
from cdp.access._ingest import _LOOKUPS, lookup
from cdp.access._rows import EVENT_COLUMNS, READY_EVENTS, READY_PAYLOAD, json_bytes, payload_bytes
from cdp.access.context import AccessContext, connector_context
from cdp.access.database import json_column_text
from cdp.api.collect import _call_size
from cdp.connectors._parse import json_loads, text
from cdp.connectors.website import MAX_CALL_BYTES
from cdp.crypto import fields as fields_module
from cdp.crypto.fields import FieldCipher, RecordEncryptor, token_nonce
from cdp.model import EventData, IncomingRecord

STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, sort_keys=True).encode


def _same(a: Any, b: Any) -> bool:
    """Equality that counts NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": "é 北京 <&>", "c": [1.5, True, None, -0.0, 1e-7, 2**70]},
        {"x": float("nan"), "y": float("inf")},
        {"when": datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC), "price": Decimal("1.50")},
        {"tuple": (1, 2), "nested": {"z": {"y": [{"k": "v"}]}}},
        {2: "int keys", 1: "x"},
        {"surrogate": "\ud800"},
        {},
    ],
)
def test_json_bytes_stores_what_json_stored(value: Any) -> None:
    fast = json_bytes(value)
    assert _same(json.loads(fast), json.loads(STDLIB(value).encode("utf-8", "surrogatepass")))


def test_payload_is_stripped_of_special_categories_at_any_level() -> None:
    sensitive = frozenset({"health", "geo", "ssn"})
    plain = {"event": "Viewed", "properties": {"geometry": "square", "note": "health"}}
    assert payload_bytes(plain, sensitive) == json_bytes(plain)  # a value or a longer key is no key
    nested = {"a": {"b": [{"Health": "x", "keep": 1}]}, "GEO": {"lat": 1}, "city": "北京"}
    assert json.loads(payload_bytes(nested, sensitive)) == {"a": {"b": [{"keep": 1}]}, "city": "北京"}
    # Non-ASCII text elsewhere in the payload takes the decoded path; the key is still found.
    assert json.loads(payload_bytes({"名前": "值", "SSN": "1"}, sensitive)) == {"名前": "值"}
    # A key that lowers to a special category only through Unicode case rules (a Kelvin sign for K).
    assert json.loads(payload_bytes({"\u212aey": 1, "b": 2}, frozenset({"key"}))) == {"b": 2}
    # Keys that the text cannot show (non-ASCII, quotes) are always checked by walking the payload.
    assert json.loads(payload_bytes({"Ärzte": 1, "b": 2}, frozenset({"ärzte"}))) == {"b": 2}


def test_encrypt_record_makes_the_tokens_encrypt_makes() -> None:
    cipher = FieldCipher(bytes(range(32)), "k_test")
    tokens = cipher.encrypt_record("r_1", ("payload", "email", "phone", "given_name"), (b'{"a":1}', "a@b.c", None, ""))
    assert tokens[2] is None and tokens[3] is None
    assert cipher.decrypt(tokens[0] or b"", record_id="r_1", field="payload") == '{"a":1}'
    assert cipher.decrypt(tokens[1] or b"", record_id="r_1", field="email") == "a@b.c"
    with pytest.raises(Exception, match="moved"):  # bound to its field and record like any token
        cipher.decrypt(tokens[1] or b"", record_id="r_1", field="phone")
    many = cipher.encrypt_record("r_2", ("a", "b", "c"), ("x", "y", "z"))
    assert len({token_nonce(token or b"") for token in many}) == 3


def test_record_encryptor_makes_the_tokens_encrypt_record_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = ("payload", "email", "phone", "given_name")
    people = [FieldCipher(bytes([n]) * 32, f"k_{n}") for n in range(3)]
    items: list[tuple[FieldCipher, str, tuple[str | bytes | None, ...]]] = [
        (people[n % 3], f"r_{n}", (b'{"a":1}', f"p{n}@b.c", None, "Zoë \ud800") if n % 2 else (b"{}",))
        for n in range(7)
    ]
    tokens = RecordEncryptor(fields).encrypt_many(items)
    # Every token decrypts with the per-field path, in its own field and record only.
    for (cipher, record_id, values), row in zip(items, tokens, strict=True):
        padded = [*values, None, None, None][: len(fields)]
        for field, value, token in zip(fields, padded, row, strict=True):
            if not value:
                assert token is None
                continue
            text = value.decode() if isinstance(value, bytes) else value
            assert cipher.decrypt(token or b"", record_id=record_id, field=field) == text
            with pytest.raises(Exception, match="moved"):
                cipher.decrypt(token or b"", record_id=record_id + "x", field=field)
    nonces = [token_nonce(token) for row in tokens for token in row if token]
    assert len(set(nonces)) == len(nonces) == 4 + 3 * 3
    # Given the same random bytes, exactly the bytes of FieldCipher.encrypt_record.
    monkeypatch.setattr(fields_module, "_urandom", lambda size: bytes(i % 256 for i in range(size)))
    for cipher, record_id, values in items:
        padded_tuple = (*values, None, None, None)[: len(fields)]
        [fast] = RecordEncryptor(fields).encrypt_many([(cipher, record_id, padded_tuple)])
        assert fast == cipher.encrypt_record(record_id, fields, padded_tuple)
    with pytest.raises(CryptoError):
        RecordEncryptor(fields[:1]).encrypt_many([(people[0], "r", ("a", "b"))])


def test_record_encryptor_nonces_stay_unique_past_one_csprng_read() -> None:
    cipher = FieldCipher(bytes(32), "k_many")
    count = (1 << 16) + 10  # more nonces than one read of the pool holds
    tokens = RecordEncryptor(("payload",)).encrypt_many([(cipher, f"r_{n}", (b"x",)) for n in range(count)])
    assert len({token_nonce(row[0] or b"") for row in tokens}) == count
    assert cipher.decrypt(tokens[-1][0] or b"", record_id=f"r_{count - 1}", field="payload") == "x"


def _record(n: int, **identity: str) -> IncomingRecord:
    when = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    return IncomingRecord(
        source="web",
        stream="calls",
        source_record_id=f"m{n}",
        occurred_at=when,
        payload={"n": n, "ok": True},
        identity=dict(identity),
        match_keys={"email": identity["email"]} if "email" in identity else {},
        anonymous_id=f"a{n}",
        events=[
            EventData("track", when, "Viewed", revenue=3, properties={"sku": "s1", "名": "x"}),
            EventData("page", datetime(2026, 1, 1, tzinfo=UTC), "Home"),
        ],
        message_id=f"m{n}",
    )


def test_row_maker_converts_what_the_insert_would(store: CustomerStore) -> None:
    dialect = store.engine.dialect
    converted = store.row_maker(dialect)
    plain = store.row_maker()
    records = [_record(1, email="a@example.org"), _record(2)]
    fast, slow = converted.make(records), plain.make(records)
    assert [r[READY_PAYLOAD] for r in fast] == [json_bytes({"n": 1, "ok": True}), json_bytes({"n": 2, "ok": True})]
    if not converted.converted:
        return  # other databases convert when inserting
    convert = compiled_insert(dialect, t.events, EVENT_COLUMNS).convert_row
    for made, reference in zip(fast, slow, strict=True):
        assert [row[2:] for row in made[READY_EVENTS]] == [convert(row)[2:] for row in reference[READY_EVENTS]]


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": "é 北京 <&>", "c": [1.5, True, None, -0.0, 1e-7, 2**70]},
        {"x": float("nan"), "y": float("inf")},
        {"tuple": (1, 2), "nested": {"z": {"y": [{"k": "v"}]}}},
        {2: "int keys", 1: "x"},
        {"surrogate": "\ud800", "nul": "a\x00b"},
        [1, "two"],
        "text",
        {},
    ],
)
def test_json_column_text_stores_what_json_dumps_stored(value: Any) -> None:
    """SQLAlchemy wrote JSON columns with ``json.dumps``: the faster text decodes to the same value."""
    assert _same(json.loads(json_column_text(value)), json.loads(json.dumps(value)))


@pytest.mark.parametrize("value", [{"when": datetime(2026, 12, 5, tzinfo=UTC)}, {"price": Decimal("1.50")}])
def test_json_column_text_refuses_what_json_dumps_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        json_column_text(value)


def test_a_runs_row_maker_computes_each_blind_index_once(store: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [_record(n % 3, email=f"p{n % 2}@example.org") for n in range(12)]
    computed: list[tuple[str, str]] = []

    def index(kind: str, value: str) -> str:
        computed.append((kind, value))
        return store.indexer.index(kind, value)

    remembering = store.row_maker(remember_digests=True)
    remembering.index = index
    plain = store.row_maker()

    def strip(rows: list[Any]) -> list[Any]:  # the rows without the (new, random) record ids
        return [(r[1:11], [i[1:] for i in r[11]], [e[2:] for e in r[12]]) for r in rows]

    assert strip(remembering.make(records[:6])) + strip(remembering.make(records[6:])) == strip(plain.make(records))
    assert sorted(computed) == sorted(set(computed)) and len(computed) == 5  # 2 emails, 3 anonymous ids
    # Bounded: past the limit the memo starts again, and the digests stay right.
    monkeypatch.setattr("cdp.access._rows.DIGEST_MEMO_SIZE", 2)
    small = store.row_maker(remember_digests=True)
    assert strip(small.make(records)) == strip(plain.make(records))
    assert small._digests is not None and len(small._digests) <= 2
    assert plain._digests is None


def test_ingest_lookups_match_reference(store: CustomerStore) -> None:
    ctx = connector_context("web")
    stored = store.ingest(ctx, [_record(n, email=f"p{n}@example.org") for n in range(5)])
    assert stored.accepted == 5
    with store.engine.connect() as connection:
        keys = [k for (k,) in connection.execute(t.records.select().with_only_columns(t.records.c.idempotency_key))]
        digests = [
            d for (d,) in connection.execute(t.blind_indexes.select().with_only_columns(t.blind_indexes.c.digest))
        ]
        values = {
            "stored": [*keys, "absent"],
            "holders": [*digests, "absent"],
            "live_keys": [*stored.record_ids, "r_absent"],
            "suppressed": digests,
        }
        for name, asked in values.items():
            reference = {tuple(row) for row in connection.execute(_LOOKUPS[name][0], {"values": asked})}
            assert set(lookup(connection, name, asked)) == reference, name
            assert name == "suppressed" or reference
        many = [f"x{i}" for i in range(2000)] + keys  # more than one chunk
        assert {k for (k,) in lookup(connection, "stored", many)} == set(keys)
        for kind in ("email", "anonymous_id", "user_id"):
            asked = [*digests, "absent"]
            reference = {
                tuple(row) for row in connection.execute(_LOOKUPS["first_holders"][0], {"values": asked, "kind": kind})
            }
            assert set(lookup(connection, "first_holders", asked, (kind,))) == reference
            assert kind == "user_id" or len(reference) == 5
    again = store.ingest(ctx, [_record(n, email=f"p{n}@example.org") for n in range(5)])
    assert (again.accepted, again.duplicates) == (0, 5)
    assert store.counts(AccessContext("t", "data_engineer", "operations")).get("records:web") == 5


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": NaN, "b": -Infinity}',
        '{"a": "\\ud800"}',
        '{"a": 1e400}',
        '{"a": 123456789012345678901234567890}',
        '\ufeff{"a": 1}',
        '{"a": 1,}',
        '{"a": "x"} trailing',
        "[1, 2]",
    ],
)
def test_json_loads_decodes_or_fails_as_json_did(text: str) -> None:
    for data in (text, text.encode("utf-8", "surrogatepass")):
        try:
            expected: Any = json.loads(data)
        except ValueError as exc:
            with pytest.raises(type(exc)):
                json_loads(data)
        else:
            assert _same(json_loads(data), expected)


def test_call_size_measures_calls_near_the_limit_exactly() -> None:
    small = {"type": "track", "event": "x", "properties": {"v": 1e-7}}
    assert _call_size(small) == 0
    big = {"type": "track", "properties": {"values": [1e-7] * 3000, "n": float("nan")}}
    exact = len(json.dumps(big, ensure_ascii=False, separators=(",", ":")).encode())
    assert _call_size(big) == exact > MAX_CALL_BYTES // 3


def _text_reference(value: Any, max_len: int, required: bool) -> str | None:
    """connectors._parse.text as it was before its fast path for str (the result, or the error's reason)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is required" if required else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"must be text, got {type(value).__name__}"
    out = str(value).strip()
    return f"is {len(out)} characters, over the {max_len} limit" if len(out) > max_len else out


class _Str(str):
    def strip(self, chars: str | None = None) -> str:
        return "custom"


@pytest.mark.parametrize(
    "value",
    ["a", "  padded\t", "", "   ", "x" * 5, "x" * 6, " " + "x" * 5 + " ", "北京 ", 12, 1.5, True, None, [], _Str("s")],
)
@pytest.mark.parametrize("required", [False, True])
def test_text_fast_path_gives_what_the_general_path_gave(value: Any, required: bool) -> None:
    try:
        got = text(value, "f", record="r", required=required, max_len=5)
    except RecordRejected as exc:
        got = exc.reason
    assert got == _text_reference(value, 5, required)


def test_column_mapping_is_made_once_and_follows_the_config(tmp_path: Any) -> None:
    from cdp.connectors.base import SourceItem
    from cdp.connectors.runner import make_connector
    from cdp.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    connector = make_connector(settings, "pos", {"path": str(tmp_path / "x.csv"), "columns": {"amount": "total"}})
    item = SourceItem("transactions", "x.csv:2", "", data={"total": "5", "transaction_id": "t1"})
    assert connector.canonical(item, record_field="transaction_id")[0] == {"amount": "5", "transaction_id": "t1"}  # type: ignore[attr-defined]
    connector.config["columns"] = {"amount": "sum"}
    with pytest.raises(RecordRejected, match="unknown column"):
        connector.canonical(item, record_field="transaction_id")  # type: ignore[attr-defined]
    connector.config["ignore_columns"] = ["total"]
    assert connector.canonical(item, record_field="transaction_id")[0] == {"transaction_id": "t1"}  # type: ignore[attr-defined]


def _holder(n: int, **keys: str) -> IncomingRecord:
    return IncomingRecord(
        source="web",
        stream="people",
        source_record_id=f"h{n}",
        occurred_at=datetime(2026, 12, 5, tzinfo=UTC),
        payload={"n": n},
        identity={"email": keys["email"]} if "email" in keys else {},
        match_keys=dict(keys),
    )


def test_a_known_identifier_takes_the_key_of_its_first_holder_with_a_live_key(store: CustomerStore) -> None:
    """The look-up asks only each identifier's first holder; when that holder's key is destroyed, the
    next holder's live key is still found (not a new key)."""
    ctx = connector_context("web")

    def stored(n: int, **keys: str) -> str:
        return store.ingest(ctx, [_holder(n, **keys)]).record_ids[0]

    def key_of(record_id: str) -> str:
        with store.engine.connect() as connection:
            return str(connection.execute(t.records.select().where(t.records.c.id == record_id)).one().key_id)

    a = stored(1, user_id="u1")
    b = stored(2, email="e1@example.org")
    c = stored(3, user_id="u1", email="e1@example.org")  # takes a's key, not b's: user id is its first key
    assert key_of(c) == key_of(a) != key_of(b)
    first, second = sorted([b, c])  # the holders of e1, by record id
    assert key_of(stored(4, email="e1@example.org")) == key_of(first)
    destroyed = key_of(first)
    with store.engine.begin() as connection:
        store.shred_keys(connection, [destroyed])
    assert key_of(stored(5, email="e1@example.org")) == key_of(second)


def test_sqlite_binds_bytes_and_none_through_registered_adapters(store: CustomerStore) -> None:
    """The adapters skip sqlite3's adapter protocol (see database._bind_as_is) and change no value."""
    import sqlite3

    if store.engine.dialect.name != "sqlite":
        pytest.skip("sqlite3's adapters")
    assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)] is bytes
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    with store.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        row = driver.execute("SELECT ?, typeof(?), ?, typeof(?)", (b"\x00ab", b"", None, None)).fetchone()

    class Blob(bytes):  # a subclass still takes the protocol's path, as before
        pass

    assert row == (b"\x00ab", "blob", None, "null")
    plain = sqlite3.connect(":memory:")
    try:
        with pytest.raises(sqlite3.ProgrammingError):
            plain.execute("SELECT ?", (object(),))
        assert plain.execute("SELECT typeof(?)", (Blob(b"x"),)).fetchone() == ("blob",)
    finally:
        plain.close()
