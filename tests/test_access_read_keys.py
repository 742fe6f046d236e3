"""The bulk profile read's own crypto and masking path gives exactly what the general one gives.

``read_profiles`` decrypts with :class:`RowDecryptor` (no object per person), unwraps each key
from the key store's rows with ``FileKeyring.unwrap_blob`` when the person is assembled, and
masks text with :func:`text_treatment`. Each test pins one property of that path against the
general code (``FieldCipher.decrypt``, ``Keyring.unwrap``, ``partial``/``apply_treatment``), or a
privacy property of the read itself: keys are fetched for every read (a crypto-shred by another
process takes effect at the next read), unwrapped only for rows with something to decrypt, and
an external keyring is called from the reading process only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from demo_helpers import build
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp._exceptions import CryptoError, DecryptionFailed, KeyUnavailable
from cdp.access import AccessContext, CustomerStore, _parallel
from cdp.access import _profile_rows as _profile_rows_module
from cdp.access.context import identity_context
from cdp.access.store import PROFILE_FIELDS
from cdp.crypto import FieldCipher, FileKeyring, WrappedKey, encode_aad, new_data_key
from cdp.crypto import keystore as keystore_module
from cdp.crypto.fields import RowDecryptor, hkdf_sha256, row_values_reader
from cdp.policy.masking import REDACTED, apply_treatment, partial, text_treatment, treatment_function
from cdp.settings import Settings

MARKETER = AccessContext("user:m", "marketer", "analytics")
OFFICER = AccessContext("user:o", "compliance_officer", "compliance")
FIELDS = ("email", "phone", "given_name")


def _row(cipher: FieldCipher, record_id: str, values: dict[str, str | None]) -> tuple[Any, ...]:
    tokens = [None if v is None else cipher.encrypt(v, record_id=record_id, field=f) for f, v in values.items()]
    return ("profile", record_id, "source", cipher.key_id, *tokens)


def _decryptor() -> RowDecryptor:
    return RowDecryptor([(name, 4 + i) for i, name in enumerate(FIELDS)])


# -- RowDecryptor ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=3, max_size=3),
    record_id=st.text(min_size=1, max_size=30),
)
def test_row_decryptor_reads_what_field_cipher_reads(values: list[str | None], record_id: str) -> None:
    data_key = new_data_key()
    cipher = FieldCipher(data_key, "k-1")
    row = _row(cipher, record_id, dict(zip(FIELDS, values, strict=True)))
    expected = {
        name: cipher.decrypt(token, record_id=record_id, field=name)
        for name, token in zip(FIELDS, row[4:], strict=True)
        if token is not None
    }
    got = _decryptor().decrypt_row(lambda _key_id: data_key, "k-1", record_id, row)
    assert got == {name: value for name, value in expected.items() if value}


def test_row_decryptor_reads_lone_surrogates_and_version_1_tokens() -> None:
    data_key = new_data_key()
    cipher = FieldCipher(data_key, "k-1")
    row = list(_row(cipher, "r1", {"email": "a\ud800b@example.com", "phone": None, "given_name": "Ann"}))
    subkey = hkdf_sha256(data_key, b"cdp-field:phone")  # version 1: a per-field subkey
    nonce = os.urandom(12)
    aad = encode_aad(b"\x01", "r1", "phone", "k-1")
    row[5] = b"\x01" + nonce + AESGCM(subkey).encrypt(nonce, b"+15550100", aad)
    got = _decryptor().decrypt_row(lambda _key_id: data_key, "k-1", "r1", row)
    assert got == {"email": "a\ud800b@example.com", "phone": "+15550100", "given_name": "Ann"}


@pytest.mark.parametrize(("record_id", "key_id"), [("r2", "k-1"), ("r1", "k-2")], ids=["other-record", "other-key-id"])
def test_row_decryptor_refuses_moved_tokens_naming_field_and_record(record_id: str, key_id: str) -> None:
    data_key = new_data_key()
    row = _row(FieldCipher(data_key, "k-1"), "r1", {"email": "alice@example.com", "phone": None, "given_name": None})
    with pytest.raises(DecryptionFailed, match=f"field 'email' of record '{record_id}'") as info:
        _decryptor().decrypt_row(lambda _key_id: data_key, key_id, record_id, row)
    assert "alice" not in str(info.value)


def test_row_decryptor_refuses_a_token_moved_to_another_field() -> None:
    data_key = new_data_key()
    cipher = FieldCipher(data_key, "k-1")
    row = list(_row(cipher, "r1", {"email": "alice@example.com", "phone": None, "given_name": None}))
    row[5] = row[4]  # the email token copied into the phone column
    with pytest.raises(DecryptionFailed, match="field 'phone'"):
        _decryptor().decrypt_row(lambda _key_id: data_key, "k-1", "r1", row)


def test_row_decryptor_refuses_every_flipped_byte_truncation_and_unknown_version() -> None:
    data_key = new_data_key()
    token = FieldCipher(data_key, "k-1").encrypt("alice@example.com", record_id="r1", field="email")
    broken = [bytes([token[0] ^ 0x04]) + token[1:], *(token[:cut] for cut in (1, 5, 13, 20, 28, len(token) - 1))]
    for i in range(1, len(token)):
        flipped = bytearray(token)
        flipped[i] ^= 0x01
        broken.append(bytes(flipped))
    for bad in broken:
        with pytest.raises(DecryptionFailed, match="field 'email' of record 'r1'"):
            _decryptor().decrypt_row(lambda _key_id: data_key, "k-1", "r1", ("p", "r1", "s", "k-1", bad, None, None))


def test_row_decryptor_unwraps_only_for_a_row_with_a_token() -> None:
    calls: list[str] = []
    data_key = new_data_key()

    def key_of(key_id: str) -> bytes:
        calls.append(key_id)
        return data_key

    decrypt_row = _decryptor().decrypt_row
    assert decrypt_row(key_of, "k-1", "r1", ("p", "r1", "s", "k-1", None, b"", None)) == {}
    assert calls == []
    row = _row(FieldCipher(data_key, "k-1"), "r1", {"email": "a@b.c", "phone": "+1555", "given_name": "A"})
    assert decrypt_row(key_of, "k-1", "r1", row) == {"email": "a@b.c", "phone": "+1555", "given_name": "A"}
    assert calls == ["k-1"]  # one unwrap for the whole row
    assert decrypt_row(lambda _key_id: None, "k-1", "r1", row) == {}  # a shredded key reads as nothing
    with pytest.raises(CryptoError, match="32 bytes"):
        decrypt_row(lambda _key_id: data_key[:16], "k-1", "r1", row)  # AES-128 is never accepted


# -- row_values_reader: the single-record fast path ------------------------------------------------


def _fast(keyring: FileKeyring) -> Any:
    return row_values_reader(
        [(name, 4 + i) for i, name in enumerate(FIELDS)], keyring.blob_unwrapper(keyring.current_kek_id())
    )


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)),
        min_size=3,
        max_size=3,
    ),
    record_id=st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
)
def test_row_values_reader_reads_what_row_decryptor_reads(
    values: list[str | None], record_id: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    keyring = FileKeyring(tmp_path_factory.mktemp("keys"))
    data_key = new_data_key()
    blob = keyring.wrap(data_key, aad=b"k-1").blob
    row = _row(FieldCipher(data_key, "k-1"), record_id, dict(zip(FIELDS, values, strict=True)))
    reference = _decryptor().decrypt_row(lambda _key_id: data_key, "k-1", record_id, row)
    assert _fast(keyring)(blob, "k-1", record_id, row) == [reference.get(name) for name in FIELDS]


def test_row_values_reader_leaves_every_unusual_row_to_the_reference_path(tmp_path: Path) -> None:
    """It raises (the read then decodes the row with RowDecryptor) rather than guess."""
    keyring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    blob = keyring.wrap(data_key, aad=b"k-1").blob
    cipher = FieldCipher(data_key, "k-1")
    read = _fast(keyring)
    surrogate = _row(cipher, "r1", {"email": "a\ud800b@example.com", "phone": None, "given_name": None})
    moved = _row(cipher, "r1", {"email": "alice@example.com", "phone": None, "given_name": None})
    version_1 = list(_row(cipher, "r1", {"email": None, "phone": "+1555", "given_name": None}))
    version_1[5] = b"\x01" + bytes(version_1[5])[1:]
    for row, record_id, key_id, wrapped in (
        (surrogate, "r1", "k-1", blob),  # written with surrogatepass
        (moved, "r2", "k-1", blob),  # another record's token
        (moved, "r1", "k-2", keyring.wrap(data_key, aad=b"k-2").blob),  # another key id's token
        (version_1, "r1", "k-1", blob),
        (moved, "r1", "k-1", keyring.wrap(data_key, aad=b"k-9").blob),  # a key wrapped for another id
        (moved, "r1", "k-1", blob[:20]),
    ):
        with pytest.raises((DecryptionFailed, InvalidTag, ValueError)):
            read(wrapped, key_id, record_id, row)


def test_row_values_reader_unwraps_only_for_a_row_with_a_token(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    calls: list[bytes] = []
    unwrap = keyring.blob_unwrapper(keyring.current_kek_id())

    def counting(blob: bytes, lp_aad: bytes) -> bytes:
        calls.append(lp_aad)
        return unwrap(blob, lp_aad)

    read = row_values_reader([(name, 4 + i) for i, name in enumerate(FIELDS)], counting)
    blob = keyring.wrap(data_key, aad=b"k-1").blob
    assert read(blob, "k-1", "r1", ("p", "r1", "s", "k-1", None, b"", None)) == [None, None, None]
    assert calls == []
    row = _row(FieldCipher(data_key, "k-1"), "r1", {"email": "a@b.c", "phone": "", "given_name": "A"})
    assert read(blob, "k-1", "r1", row) == ["a@b.c", None, "A"]
    assert calls == [len(b"k-1").to_bytes(4, "big") + b"k-1"]  # one unwrap for the whole row
    assert read(None, "k-1", "r1", row) == [None, None, None]  # a shredded key reads as nothing
    short = keyring.wrap(data_key[:16], aad=b"k-1").blob
    with pytest.raises(CryptoError, match="32 bytes"):
        read(short, "k-1", "r1", row)  # AES-128 is never accepted


def test_the_fast_path_of_a_bulk_read_gives_what_the_reference_path_gives(
    demo_store: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of single-record profiles once with the fast decryption and once with it
    refusing every row (each row then read by the reference decoder), under every role."""
    fields = [f for f in PROFILE_FIELDS if f != "profile_id"]
    contexts = [
        MARKETER,
        OFFICER,
        AccessContext("user:a", "analyst", "analytics"),
        AccessContext("user:m", "marketer", "marketing_email"),
        AccessContext("user:e", "data_engineer", "operations"),
    ]
    asks = [fields, ["email", "phone", "given_name", "family_name", "city", "country"], ["date_of_birth", "gender"]]
    fast = [demo_store.read_profiles(ctx, ask) for ctx in contexts for ask in asks]

    def refusing(*_args: Any) -> Any:
        def read(*_row: Any) -> Any:
            raise DecryptionFailed("refused")

        return read

    monkeypatch.setattr(_profile_rows_module, "row_values_reader", refusing)
    assert [demo_store.read_profiles(ctx, ask) for ctx in contexts for ask in asks] == fast
    assert any(r.get("email") for rows in fast for r in rows)


# -- key store rows and FileKeyring.unwrap_blob ---------------------------------------------------


@pytest.mark.parametrize("path", ["probes", "scan", "scan-most"])
def test_key_store_blobs_are_what_get_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    store = keystore_module.DataKeyStore(tmp_path / "keys")
    store.put((f"k{i}", WrappedKey("kek-a" if i % 4 < 2 else "kek-b", os.urandom(61))) for i in range(20))
    # look-ups for a small share of the store, a scan for a large one
    monkeypatch.setattr(keystore_module, "_SCAN_SHARE", 0 if path == "probes" else 1_000_000)
    # some absent (shredded or never made); "scan-most" asks for more than half of the store
    wanted = [f"k{i}" for i in range(0, 30, 2 if path == "scan-most" else 3)]
    found = store.blobs_by_kek(wanted)
    assert {k: WrappedKey(kek, blob) for kek, blobs in found.items() for k, blob in blobs.items()} == store.get(wanted)
    assert {k for blobs in found.values() for k in blobs} == {k for k in wanted if int(k[1:]) < 20}
    assert set(found) == {"kek-a", "kek-b"}
    assert all(k in found["kek-b"] for k in wanted if int(k[1:]) % 4 >= 2 and int(k[1:]) < 20)
    store.close()


def test_unwrap_blob_is_unwrap(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    wrapped = keyring.wrap(data_key, aad=b"k-1")
    assert keyring.unwrap_blob(wrapped.kek_id, wrapped.blob, b"k-1") == data_key == keyring.unwrap(wrapped, aad=b"k-1")
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        keyring.unwrap_blob(wrapped.kek_id, wrapped.blob, b"k-2")  # bound to another key id
    for bad in (b"", wrapped.blob[:20], b"\x02" + wrapped.blob[1:]):
        with pytest.raises(DecryptionFailed, match="malformed"):
            keyring.unwrap_blob(wrapped.kek_id, bad, b"k-1")
    with pytest.raises(KeyUnavailable):
        keyring.unwrap_blob("20000101T000000Z-00000000", wrapped.blob, b"k-1")
    unwrap = keyring.blob_unwrapper(wrapped.kek_id)
    assert unwrap(wrapped.blob, len(b"k-1").to_bytes(4, "big") + b"k-1") == data_key
    with pytest.raises(DecryptionFailed, match="does not authenticate"):
        unwrap(wrapped.blob, len(b"k-2").to_bytes(4, "big") + b"k-2")
    for bad in (b"", wrapped.blob[:20], b"\x02" + wrapped.blob[1:]):
        with pytest.raises(DecryptionFailed, match="malformed"):
            unwrap(bad, len(b"k-1").to_bytes(4, "big") + b"k-1")


# -- masking of text ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["email", "phone", "date_of_birth", "given_name", "city"]),
    value=st.one_of(st.text(max_size=30), st.from_regex(r"[a-z.]{0,8}@[a-z.]{0,8}", fullmatch=True)),
)
def test_text_treatment_is_apply_treatment(field: str, value: str) -> None:
    assert text_treatment("mask:partial", field)(value) == partial(field, value)  # type: ignore[misc]
    for treatment in ("mask:partial", "mask:hash", "mask:generalise", "mask:unknown"):
        text = text_treatment(treatment, field)
        generic = treatment_function(treatment, field)
        assert text is not None and generic is not None
        assert text(value) == generic(value) == apply_treatment(treatment, field, value)
    assert text_treatment("allow", field) is None
    assert text_treatment("mask:unknown", field)(value) == REDACTED  # type: ignore[misc]


# -- the read itself ------------------------------------------------------------------------------


@pytest.fixture
def demo_store(store: CustomerStore, tmp_path: Path) -> Iterator[CustomerStore]:
    build(store, tmp_path / "demo", customers=60)
    yield store


def _emails(store: CustomerStore) -> dict[str, str]:
    return {r["profile_id"]: r["email"] for r in store.read_profiles(OFFICER, ["email"]) if r.get("email")}


def _key_ids_of(store: CustomerStore, profile_id: str) -> set[str]:
    """The data-key ids of a profile's linked records (read directly: the test's own look-up)."""
    mark = "?" if store.engine.dialect.name == "sqlite" else "%s"
    with store.engine.connect() as connection:
        return {
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT r.key_id FROM records r JOIN record_links l ON l.record_id = r.id "
                f"WHERE l.profile_id = {mark} AND l.unlinked_at IS NULL",
                (profile_id,),
            )
        }


def test_a_crypto_shred_by_another_process_takes_effect_at_the_next_read(
    demo_store: CustomerStore, settings: Settings
) -> None:
    before = _emails(demo_store)  # this store has read (and, before, cached) every key
    victim = sorted(before)[0]
    keys = _key_ids_of(demo_store, victim)
    other = keystore_module.DataKeyStore(settings.keys_dir)  # another process's key store connection
    try:
        assert other.destroy(keys) == len(keys)
    finally:
        other.close()
    after = _emails(demo_store)
    assert victim not in after
    assert after == {p: e for p, e in before.items() if p != victim}


def test_keys_are_unwrapped_only_for_rows_with_a_value_asked_for(
    demo_store: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    keyring = demo_store.keyring
    assert isinstance(keyring, FileKeyring)
    unwrapped: list[bytes] = []
    original = keyring.unwrap_blob

    def counting(kek_id: str, blob: bytes, aad: bytes) -> bytes:
        unwrapped.append(aad)
        return original(kek_id, blob, aad)

    monkeypatch.setattr(keyring, "unwrap_blob", counting)
    original_unwrapper = keyring.blob_unwrapper

    def counting_unwrapper(kek_id: str) -> Any:
        unwrap = original_unwrapper(kek_id)

        def count(blob: bytes, lp_aad: bytes) -> bytes:
            unwrapped.append(lp_aad[4:])
            return unwrap(blob, lp_aad)

        return count

    monkeypatch.setattr(keyring, "blob_unwrapper", counting_unwrapper)
    assert demo_store.read_profiles(OFFICER, ["city", "country"])  # clear fields only: no key at all
    assert unwrapped == []
    rows = demo_store.read_profiles(OFFICER, ["date_of_birth"])
    with demo_store.engine.connect() as connection:
        with_birth_date = {
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT key_id FROM records WHERE date_of_birth_enc IS NOT NULL AND status = 'active'"
            )
        }
    assert any(r.get("date_of_birth") for r in rows)
    assert {aad.decode() for aad in unwrapped} <= with_birth_date
    assert len(unwrapped) == len(set(unwrapped))  # once per key and read


class _ExternalKeyring:
    """Stands for a KMS: not a FileKeyring, so the read unwraps through it, here, before any split."""

    def __init__(self, inner: FileKeyring) -> None:
        self.inner = inner
        self.pids: list[int] = []

    def current_kek_id(self) -> str:
        return self.inner.current_kek_id()

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey:
        return self.inner.wrap(data_key, aad=aad)

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        self.pids.append(os.getpid())
        return self.inner.unwrap(wrapped, aad=aad)


def test_an_external_keyring_is_called_from_the_reading_process_only(
    demo_store: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = [f for f in PROFILE_FIELDS if f != "profile_id"]
    expected = demo_store.read_profiles(MARKETER, fields, with_provenance=True)
    assert isinstance(demo_store.keyring, FileKeyring)
    external = _ExternalKeyring(demo_store.keyring)
    monkeypatch.setattr(demo_store, "keyring", external)
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_ITEMS", 2)
    assert demo_store.read_profiles(MARKETER, fields, with_provenance=True) == expected
    assert _parallel.outcome["last"] == "child"
    assert external.pids and set(external.pids) == {os.getpid()}


def test_a_read_during_a_kek_rotation_unwraps_under_each_kek(demo_store: CustomerStore) -> None:
    fields = [f for f in PROFILE_FIELDS if f != "profile_id"]
    before = demo_store.read_profiles(MARKETER, fields, with_provenance=True)
    keyring, keys = demo_store.keyring, demo_store.keystore
    old = keyring.current_kek_id()
    every_key = sorted(key_id for key_id, _ in keys.not_under("no-such-kek"))
    keyring.rotate()
    rewrapped = keys.get(every_key[::2])  # half the keys re-wrapped under the new KEK so far
    keys.put((k, keyring.wrap(keyring.unwrap(w, aad=k.encode()), aad=k.encode())) for k, w in rewrapped.items())
    assert set(keys.blobs_by_kek(every_key)) == {old, keyring.current_kek_id()}
    assert demo_store.read_profiles(MARKETER, fields, with_provenance=True) == before


def test_a_crypto_shred_by_another_process_reaches_every_read_path_of_a_running_store(
    demo_store: CustomerStore, settings: Settings
) -> None:
    """The per-person read paths keep unwrapped keys between accesses (``_ciphers``): a key another
    process destroys must leave this store's memory at its next access, not at its next start."""
    officer = AccessContext("user:o", "compliance_officer", "dsr")
    engineer = identity_context()
    features = demo_store.identity_features(engineer, include_identifiers=True)  # unwraps and keeps every key
    victim = next(f for f in features if f.get("email"))
    export = demo_store.subject_export(officer, victim["profile_id"])
    assert any(r["fields"].get("email") for r in export["records"])
    keys = _key_ids_of(demo_store, victim["profile_id"])
    assert all(demo_store.has_cipher(k) for k in keys)  # held in memory before the shred
    other = keystore_module.DataKeyStore(settings.keys_dir)  # another process's key store connection
    try:
        assert other.destroy(keys) == len(keys)
    finally:
        other.close()
    again = {f["record_id"]: f for f in demo_store.identity_features(engineer, include_identifiers=True)}
    assert not any(k in keys for k in demo_store._ciphers)
    assert all(again[f["record_id"]].get("email") is None for f in features if f["profile_id"] == victim["profile_id"])
    assert all(
        again[f["record_id"]].get("email") == f.get("email")
        for f in features
        if f["profile_id"] != victim["profile_id"]
    )
    export = demo_store.subject_export(officer, victim["profile_id"])
    assert not any(r["fields"].get("email") for r in export["records"])


def test_the_key_store_logs_which_keys_were_destroyed(tmp_path: Path) -> None:
    store = keystore_module.DataKeyStore(tmp_path / "keys")
    store.put((f"k{i}", WrappedKey("kek-a", os.urandom(61))) for i in range(5))
    assert store.last_shred() == 0 and store.shredded_since(0) == (0, [])
    store.destroy(["k1", "k3"])
    seen, ids = store.shredded_since(0)
    assert sorted(ids) == ["k1", "k3"] and seen == store.last_shred() > 0
    assert store.shredded_since(seen) == (seen, [])
    store.destroy(["k4"])
    assert store.shredded_since(seen)[1] == ["k4"]
    store.close()
