"""The column path of the bulk profile read (``column_values_reader``, ``_single_records_reader``)
gives exactly the row path's values, and leaves every row it cannot take to the row path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from demo_helpers import build
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp._exceptions import CryptoError, DecryptionFailed
from cdp.access import AccessContext, CustomerStore
from cdp.access import _profile_rows as _profile_rows_module
from cdp.access.store import PROFILE_FIELDS
from cdp.crypto import FieldCipher, FileKeyring, new_data_key
from cdp.crypto.columns import column_values_reader
from cdp.crypto.fields import row_values_reader

FIELDS = ("email", "phone", "given_name")
_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


def _positions() -> list[tuple[str, int]]:
    return [(name, 4 + i) for i, name in enumerate(FIELDS)]


def _person(
    keyring: FileKeyring, key_id: str, record_id: str, values: list[str | None]
) -> tuple[bytes, tuple[Any, ...]]:
    data_key = new_data_key()
    cipher = FieldCipher(data_key, key_id)
    tokens = [
        None if v is None else cipher.encrypt(v, record_id=record_id, field=f)
        for f, v in zip(FIELDS, values, strict=True)
    ]
    return keyring.wrap(data_key, aad=key_id.encode()).blob, ("profile", record_id, "source", key_id, *tokens)


@settings(max_examples=40, deadline=None)
@given(
    people=st.lists(
        st.tuples(st.lists(st.one_of(st.none(), _TEXT), min_size=3, max_size=3), st.booleans(), _TEXT),
        min_size=0,
        max_size=12,
    )
)
def test_columns_are_the_row_path_row_by_row(
    people: list[tuple[list[str | None], bool, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random values, empty and absent fields, shredded keys (no blob), any record id."""
    keyring = FileKeyring(tmp_path_factory.mktemp("keys"))
    kek_id = keyring.current_kek_id()
    blobs: list[bytes | None] = []
    rows: list[tuple[Any, ...]] = []
    for i, (values, shredded, record_id) in enumerate(people):
        blob, row = _person(keyring, f"k-{i}", f"{record_id}-{i}", values)
        blobs.append(None if shredded else blob)
        rows.append(row)
    by_row = row_values_reader(_positions(), keyring.blob_unwrapper(kek_id))
    columns = column_values_reader(_positions(), keyring.blobs_unwrapper(kek_id))(
        blobs, [r[3] for r in rows], [r[1] for r in rows], rows
    )
    expected = [by_row(blob, row[3], row[1], row) for blob, row in zip(blobs, rows, strict=True)]
    assert [list(values) for values in zip(*columns, strict=True)] == expected or (not rows and columns == [[], [], []])


def test_the_column_path_raises_on_what_the_row_path_raises_on(tmp_path: Path) -> None:
    """It raises rather than guess; the read then takes those rows one by one."""
    keyring = FileKeyring(tmp_path / "keys")
    kek_id = keyring.current_kek_id()
    read = column_values_reader(_positions(), keyring.blobs_unwrapper(kek_id))
    good_blob, good = _person(keyring, "k-1", "r1", ["a@b.c", "+1555", "Ann"])
    surrogate_blob, surrogate = _person(keyring, "k-2", "r2", ["a\ud800b@example.com", None, None])
    version_1 = list(good)
    version_1[5] = b"\x01" + bytes(good[5])[1:]
    short_key = keyring.wrap(new_data_key()[:16], aad=b"k-1").blob
    cases: list[tuple[bytes, tuple[Any, ...] | list[Any], str, str]] = [
        (surrogate_blob, surrogate, "k-2", "r2"),  # written with surrogatepass
        (good_blob, good, "k-1", "r9"),  # another record's tokens
        (good_blob, version_1, "k-1", "r1"),
        (keyring.wrap(new_data_key(), aad=b"k-1").blob, good, "k-1", "r1"),  # another key
        (good_blob[:20], good, "k-1", "r1"),  # a truncated wrapped key
        (good_blob, good, "k-1" + "x" * 300, "r1"),  # a key id of 256 bytes or more
    ]
    for blob, row, key_id, record_id in cases:
        with pytest.raises((DecryptionFailed, CryptoError, InvalidTag, ValueError, IndexError)):
            read([good_blob, blob], ["k-1", key_id], ["r1", record_id], [good, row])
    with pytest.raises(CryptoError):
        read([short_key], ["k-1"], ["r1"], [good])


def test_rows_without_a_token_or_a_key_unwrap_nothing(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keys")
    unwrap_many = keyring.blobs_unwrapper(keyring.current_kek_id())
    asked: list[list[bytes]] = []

    def counting(blobs: Any, lp_aads: Any) -> list[bytes]:
        asked.append(list(lp_aads))
        return unwrap_many(blobs, lp_aads)

    read = column_values_reader(_positions(), counting)
    blob, row = _person(keyring, "k-1", "r1", ["a@b.c", None, "Ann"])
    empty = ("profile", "r2", "source", "k-2", None, b"", None)
    shredded_blob, shredded = _person(keyring, "k-3", "r3", ["x@y.z", None, None])
    assert read([blob, blob, None], ["k-1", "k-2", "k-3"], ["r1", "r2", "r3"], [row, empty, shredded]) == [
        ["a@b.c", None, None],
        [None, None, None],
        ["Ann", None, None],
    ]
    assert asked == [[len(b"k-1").to_bytes(4, "big") + b"k-1"]]
    assert shredded_blob  # its key exists, but the read was given none: it reads as nothing


# -- the read ---------------------------------------------------------------------------------------


@pytest.fixture
def demo_store(store: CustomerStore, tmp_path: Path) -> Iterator[CustomerStore]:
    build(store, tmp_path / "demo", customers=60)
    yield store


def test_a_read_by_columns_is_the_read_by_rows_and_the_reference_read(
    demo_store: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read under several roles: by columns (the default), then with the column path
    refusing every batch (each row then read by the row path), then with both refusing (each row
    read by the reference decoder)."""
    fields = [f for f in PROFILE_FIELDS if f != "profile_id"]
    contexts = [
        AccessContext("user:m", "marketer", "analytics"),
        AccessContext("user:o", "compliance_officer", "compliance"),
        AccessContext("user:a", "analyst", "analytics"),
        AccessContext("user:m", "marketer", "marketing_email"),
        AccessContext("user:m", "marketer", "advertising"),
        AccessContext("user:e", "data_engineer", "operations"),
    ]
    asks = [fields, ["email", "phone", "given_name", "family_name", "city", "country"], ["date_of_birth", "gender"]]
    used: list[int] = []
    original = _profile_rows_module.column_values_reader

    def counting(*args: Any) -> Any:
        read = original(*args)

        def count(*batch: Any) -> Any:
            used.append(len(batch[3]))
            return read(*batch)

        return count

    monkeypatch.setattr(_profile_rows_module, "column_values_reader", counting)
    by_columns = [demo_store.read_profiles(ctx, ask) for ctx in contexts for ask in asks]
    assert sum(used) > 0

    def refusing(*_args: Any) -> Any:
        def read(*_row: Any) -> Any:
            raise DecryptionFailed("refused")

        return read

    monkeypatch.setattr(_profile_rows_module, "column_values_reader", refusing)
    assert [demo_store.read_profiles(ctx, ask) for ctx in contexts for ask in asks] == by_columns
    monkeypatch.setattr(_profile_rows_module, "row_values_reader", refusing)
    assert [demo_store.read_profiles(ctx, ask) for ctx in contexts for ask in asks] == by_columns
    assert any(r.get("email") for rows in by_columns for r in rows)
    assert [list(r) for r in by_columns[1]] == [list(r) for r in by_columns[1]]  # keys in the order asked


def test_a_consent_filter_by_columns_excludes_what_the_row_path_excludes(
    demo_store: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = AccessContext("user:m", "marketer", "marketing_email")
    ask = ["email", "given_name", "country"]
    by_columns = demo_store.read_profiles(ctx, ask)

    def refusing(*_args: Any) -> Any:
        def read(*_row: Any) -> Any:
            raise DecryptionFailed("refused")

        return read

    monkeypatch.setattr(_profile_rows_module, "column_values_reader", refusing)
    by_rows = demo_store.read_profiles(ctx, ask)
    assert by_columns == by_rows
    everyone = demo_store.read_profiles(AccessContext("user:o", "compliance_officer", "compliance"), ["email"])
    assert len(by_columns) < len(everyone)  # the demo has people without consent to e-mail
