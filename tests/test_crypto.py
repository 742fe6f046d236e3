"""Tests of cdp.crypto: field tokens, envelope keys, key files, blind indexes, signatures.

Each test pins one security property of the privacy core, so that breaking
the property (not just the code path) makes a test fail.
"""

from __future__ import annotations

import base64
import hmac
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pluggy
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import hookspecs
from cdp._exceptions import ConfigurationError, Conflict, CryptoError, DecryptionFailed, KeyUnavailable, NotFound
from cdp.crypto import (
    BlindIndexer,
    CheckpointSigner,
    FieldCipher,
    FileKeyring,
    Keyring,
    WrappedKey,
    data_key_aad,
    default_keyring,
    encode_aad,
    ensure_keyring,
    load_or_create_secret,
    new_data_key,
    rewrap,
    token_nonce,
    verify_signature,
)
from cdp.crypto.fields import HmacSha256, hkdf_sha256
from cdp.hookspecs import PluginContext
from cdp.settings import Settings

EMAIL = "alice.example@example.org"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(new_data_key(), "dk-1")


# --------------------------------------------------------------------------- field tokens


def test_round_trip(cipher: FieldCipher) -> None:
    token = cipher.encrypt(EMAIL, record_id="p1", field="email")
    assert EMAIL.encode() not in token
    assert cipher.decrypt(token, record_id="p1", field="email") == EMAIL


@settings(max_examples=200, deadline=None)
@given(value=st.text(), record_id=st.text(max_size=40), field=st.text(min_size=1, max_size=20))
def test_round_trip_any_text(value: str, record_id: str, field: str) -> None:
    fc = FieldCipher(bytes(32), "k")
    assert fc.decrypt(fc.encrypt(value, record_id=record_id, field=field), record_id=record_id, field=field) == value


def test_same_value_encrypts_differently(cipher: FieldCipher) -> None:
    a = cipher.encrypt(EMAIL, record_id="p1", field="email")
    b = cipher.encrypt(EMAIL, record_id="p1", field="email")
    assert a != b
    assert token_nonce(a) != token_nonce(b)


def test_token_layout(cipher: FieldCipher) -> None:
    token = cipher.encrypt("abc", record_id="p1", field="email")
    assert token[0] == 2
    assert len(token) == 1 + 12 + 3 + 16


def test_version_2_token_is_aes_gcm_under_the_data_key_with_bound_aad() -> None:
    # An independent decryption from the documented format, so the format cannot drift silently.
    data_key = new_data_key()
    token = FieldCipher(data_key, "dk-1").encrypt(EMAIL, record_id="p1", field="email")
    aad = encode_aad(b"\x02", "p1", "email", "dk-1")
    assert AESGCM(data_key).decrypt(token[1:13], token[13:], aad).decode() == EMAIL


def _legacy_v1_token(data_key: bytes, key_id: str, value: str, record_id: str, field: str) -> bytes:
    """A version-1 token built from its documented format: a per-field HKDF subkey, AAD with version 1."""
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cdp-field:" + field.encode()).derive(data_key)
    nonce = os.urandom(12)
    aad = encode_aad(b"\x01", record_id, field, key_id)
    return b"\x01" + nonce + AESGCM(subkey).encrypt(nonce, value.encode(), aad)


def test_version_1_tokens_still_decrypt_and_stay_bound() -> None:
    data_key = new_data_key()
    token = _legacy_v1_token(data_key, "dk-1", EMAIL, "p1", "email")
    cipher = FieldCipher(data_key, "dk-1")
    assert cipher.decrypt(token, record_id="p1", field="email") == EMAIL
    for record_id, field in (("p2", "email"), ("p1", "phone")):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(token, record_id=record_id, field=field)
    # A v1 token relabelled as v2 (or the reverse) does not decrypt: the version is in the AAD.
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(b"\x02" + token[1:], record_id="p1", field="email")
    v2 = cipher.encrypt(EMAIL, record_id="p1", field="email")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(b"\x01" + v2[1:], record_id="p1", field="email")


@pytest.mark.parametrize(
    ("record_id", "field", "key_id"),
    [("p2", "email", "dk-1"), ("p1", "phone", "dk-1"), ("p1", "email", "dk-2")],
    ids=["other-record", "other-field", "other-key-id"],
)
def test_moved_ciphertext_fails(record_id: str, field: str, key_id: str) -> None:
    data_key = new_data_key()
    token = FieldCipher(data_key, "dk-1").encrypt(EMAIL, record_id="p1", field="email")
    with pytest.raises(DecryptionFailed):
        FieldCipher(data_key, key_id).decrypt(token, record_id=record_id, field=field)


def test_aad_is_unambiguous(cipher: FieldCipher) -> None:
    # With naive concatenation "p1"+"email" == "p1e"+"mail"; length prefixes keep them apart.
    assert encode_aad("ab", "c") != encode_aad("a", "bc")
    token = cipher.encrypt(EMAIL, record_id="p1", field="email")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(token, record_id="p1e", field="mail")
    # Same data key and field; "p1emailx"+"email"+"dk" == "p1"+"email"+"xemaildk" when concatenated.
    data_key = new_data_key()
    token = FieldCipher(data_key, "dk").encrypt(EMAIL, record_id="p1emailx", field="email")
    with pytest.raises(DecryptionFailed):
        FieldCipher(data_key, "xemaildk").decrypt(token, record_id="p1", field="email")


def test_every_flipped_byte_fails(cipher: FieldCipher) -> None:
    token = cipher.encrypt(EMAIL, record_id="p1", field="email")
    for i in range(len(token)):
        tampered = bytearray(token)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(bytes(tampered), record_id="p1", field="email")


def test_truncated_token_fails(cipher: FieldCipher) -> None:
    token = cipher.encrypt(EMAIL, record_id="p1", field="email")
    for cut in (0, 1, 13, 28, len(token) - 1):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(token[:cut], record_id="p1", field="email")


def test_error_names_field_and_record_but_not_value(cipher: FieldCipher) -> None:
    token = cipher.encrypt(EMAIL, record_id="p1", field="email")
    with pytest.raises(DecryptionFailed) as info:
        cipher.decrypt(token, record_id="p9", field="email")
    message = str(info.value)
    assert "'email'" in message
    assert "'p9'" in message
    assert "alice" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_field_cipher_hides_key_and_checks_length() -> None:
    data_key = new_data_key()
    fc = FieldCipher(data_key, "dk-7")
    assert repr(fc) == "FieldCipher(key_id='dk-7')"
    assert data_key.hex() not in repr(fc)
    with pytest.raises(CryptoError):
        FieldCipher(data_key[:16], "dk-7")


def test_per_field_subkeys_are_standard_hkdf() -> None:
    ikm = os.urandom(32)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cdp-field:email").derive(ikm)
    assert hkdf_sha256(ikm, b"cdp-field:email") == expected
    assert hkdf_sha256(ikm, b"cdp-field:phone") != expected
    # RFC 5869 test case 3 (SHA-256, no salt, no info), first 32 bytes of the OKM.
    okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
    assert hkdf_sha256(bytes([0x0B] * 22), b"").hex() == okm


@pytest.mark.parametrize("key_len", [0, 1, 32, 64, 65, 200])
def test_prekeyed_hmac_is_hmac_sha256(key_len: int) -> None:
    key = os.urandom(key_len)
    mac = HmacSha256(key)
    for message in (b"", b"a", os.urandom(63), os.urandom(64), os.urandom(1000)):
        assert mac.digest(message) == hmac.digest(key, message, "sha256")
    assert mac.digest(b"x") == mac.digest(b"x")  # the keyed states are not consumed


@pytest.mark.slow
def test_nonces_never_repeat_over_a_million_encryptions() -> None:
    fc = FieldCipher(new_data_key(), "dk-1")
    encrypt = fc.encrypt
    n = 1_000_000
    nonces = {encrypt("x", record_id="r", field="f")[1:13] for _ in range(n)}
    assert len(nonces) == n
    assert all(len(x) == 12 for x in list(nonces)[:10])


# --------------------------------------------------------------------------- crypto-shredding


def test_shredded_key_cannot_decrypt() -> None:
    token = FieldCipher(new_data_key(), "dk-1").encrypt(EMAIL, record_id="p1", field="email")
    # The data key is discarded; no other key (fresh random ones included) opens the token.
    for _ in range(20):
        with pytest.raises(DecryptionFailed):
            FieldCipher(new_data_key(), "dk-1").decrypt(token, record_id="p1", field="email")


def test_shredding_a_wrapped_key_leaves_ciphertext_unreadable(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    wrapped = ring.wrap(data_key, aad=data_key_aad("p1"))
    token = FieldCipher(ring.unwrap(wrapped, aad=data_key_aad("p1")), "dk-1").encrypt(
        EMAIL, record_id="p1", field="email"
    )
    del data_key, wrapped  # the storage layer deletes the wrapped-key row: nothing is left to unwrap
    with pytest.raises(DecryptionFailed):
        FieldCipher(ring.unwrap(ring.wrap(new_data_key(), aad=b""), aad=b""), "dk-1").decrypt(
            token, record_id="p1", field="email"
        )


# --------------------------------------------------------------------------- keyring


def test_wrap_unwrap(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    wrapped = ring.wrap(data_key, aad=data_key_aad("p1"))
    assert wrapped.kek_id == ring.current_kek_id()
    assert data_key not in wrapped.blob
    assert ring.unwrap(wrapped, aad=data_key_aad("p1")) == data_key
    # A fresh instance (a restarted process) reads the same KEK from disk.
    assert FileKeyring(tmp_path / "keys").unwrap(wrapped, aad=data_key_aad("p1")) == data_key
    assert isinstance(ring, Keyring)
    assert "blob=<" in repr(wrapped)


def test_wrapped_key_bound_to_its_person(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    wrapped = ring.wrap(new_data_key(), aad=data_key_aad("p1"))
    with pytest.raises(DecryptionFailed):
        ring.unwrap(wrapped, aad=data_key_aad("p2"))


def test_tampered_wrapped_key_fails(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    wrapped = ring.wrap(new_data_key(), aad=b"p1")
    for i in range(len(wrapped.blob)):
        blob = bytearray(wrapped.blob)
        blob[i] ^= 0x80
        with pytest.raises(DecryptionFailed):
            ring.unwrap(WrappedKey(wrapped.kek_id, bytes(blob)), aad=b"p1")
    with pytest.raises(DecryptionFailed):
        ring.unwrap(WrappedKey(wrapped.kek_id, wrapped.blob[:20]), aad=b"p1")


def test_wrapped_key_serialisation(tmp_path: Path) -> None:
    wrapped = FileKeyring(tmp_path / "keys").wrap(new_data_key(), aad=b"")
    assert WrappedKey.from_bytes(wrapped.to_bytes()) == wrapped
    for bad in (b"", wrapped.to_bytes()[:-1], wrapped.to_bytes() + b"\0", b"\xff\xff\xff\xff"):
        with pytest.raises(DecryptionFailed):
            WrappedKey.from_bytes(bad)


def test_rotate_rewrap_retire(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    data_key = new_data_key()
    aad = data_key_aad("p1")
    old = ring.wrap(data_key, aad=aad)
    old_kek = old.kek_id

    new_kek = ring.rotate()
    assert new_kek != old_kek
    assert ring.current_kek_id() == new_kek
    assert ring.kek_ids() == sorted([old_kek, new_kek])
    assert ring.unwrap(old, aad=aad) == data_key  # old KEK still unwraps
    assert FileKeyring(tmp_path / "keys").current_kek_id() == new_kek  # CURRENT persisted

    rewrapped = rewrap(ring, old, aad=aad)
    assert rewrapped.kek_id == new_kek
    assert rewrap(ring, rewrapped, aad=aad) is rewrapped  # idempotent

    ring.retire(old_kek)
    assert ring.kek_ids() == [new_kek]
    assert not (tmp_path / "keys" / f"kek-{old_kek}.key").exists()
    with pytest.raises(KeyUnavailable):
        ring.unwrap(old, aad=aad)
    with pytest.raises(KeyUnavailable):
        FileKeyring(tmp_path / "keys").unwrap(old, aad=aad)
    assert ring.unwrap(rewrapped, aad=aad) == data_key


def test_rotation_by_another_process_is_seen(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    server, rotation_job = FileKeyring(keys), FileKeyring(keys)
    old_kek = server.wrap(new_data_key(), aad=b"").kek_id
    new_kek = rotation_job.rotate()
    assert server.wrap(new_data_key(), aad=b"").kek_id == new_kek  # not the cached old id
    with pytest.raises(Conflict):
        server.retire(new_kek)  # current on disk, even though this instance did not rotate
    server.retire(old_kek)
    assert rotation_job.kek_ids() == [new_kek]


def test_concurrent_first_use_creates_one_kek(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: FileKeyring(keys).current_kek_id(), range(16)))
        secrets = list(pool.map(lambda _: load_or_create_secret(keys, "blind-index"), range(16)))
    assert len(set(ids)) == 1
    assert FileKeyring(keys).kek_ids() == ids[:1]  # the losers' KEKs were removed
    assert len(set(secrets)) == 1
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]


def test_retire_refuses_current_and_unknown(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    current = ring.current_kek_id()
    with pytest.raises(Conflict):
        ring.retire(current)
    assert ring.kek_ids() == [current]
    with pytest.raises(NotFound):
        ring.retire("20000101T000000Z-00000000")
    with pytest.raises(NotFound):
        ring.retire("../CURRENT")


def test_key_files_are_private(tmp_path: Path) -> None:
    keys = tmp_path / "data" / "keys"
    ring = FileKeyring(keys)
    assert not keys.exists()  # nothing is created before a key is needed
    kek_id = ring.current_kek_id()
    assert mode_of(keys) == 0o700
    kek_file = keys / f"kek-{kek_id}.key"
    assert mode_of(kek_file) == 0o600
    assert len(base64.b64decode(kek_file.read_bytes())) == 32
    assert mode_of(keys / "CURRENT") == 0o600
    ring.rotate()
    assert all(mode_of(p) == 0o600 for p in keys.iterdir())
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    kek_id = FileKeyring(keys).current_kek_id()
    (keys / f"kek-{kek_id}.key").chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        FileKeyring(keys)


def test_group_readable_secret_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    load_or_create_secret(keys, "blind-index")
    (keys / "blind-index.key").chmod(0o640)
    with pytest.raises(ConfigurationError):
        load_or_create_secret(keys, "blind-index")
    with pytest.raises(ConfigurationError):
        FileKeyring(keys)


def test_group_writable_keys_dir_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    keys.chmod(0o777)
    with pytest.raises(ConfigurationError, match="chmod 700"):
        FileKeyring(keys)


def test_missing_keys_dir_fails_closed(tmp_path: Path) -> None:
    wrapped = FileKeyring(tmp_path / "old-keys").wrap(new_data_key(), aad=b"p1")
    ring = FileKeyring(tmp_path / "lost-keys")
    with pytest.raises(KeyUnavailable):
        ring.unwrap(wrapped, aad=b"p1")
    assert not (tmp_path / "lost-keys").exists()  # unwrap never creates keys
    assert ring.kek_ids() == []
    with pytest.raises(KeyUnavailable):
        FileKeyring(tmp_path / "lost-keys", create=False).current_kek_id()


def test_current_naming_a_missing_kek_fails_closed(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    kek_id = FileKeyring(keys).current_kek_id()
    (keys / f"kek-{kek_id}.key").unlink()
    with pytest.raises(KeyUnavailable):
        FileKeyring(keys).wrap(new_data_key(), aad=b"")
    assert FileKeyring(keys).kek_ids() == []  # no replacement KEK was generated behind our back


def test_missing_current_file_starts_a_new_kek_and_keeps_old_ones(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ring = FileKeyring(keys)
    old = ring.wrap(b"k" * 32, aad=b"")
    (keys / "CURRENT").unlink()
    with pytest.raises(KeyUnavailable):
        FileKeyring(keys, create=False).current_kek_id()
    new_kek = ring.current_kek_id()
    assert new_kek != old.kek_id
    assert ring.kek_ids() == sorted([old.kek_id, new_kek])
    assert FileKeyring(keys).unwrap(old, aad=b"") == b"k" * 32


def test_hostile_kek_id_cannot_escape_keys_dir(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path / "keys")
    blob = ring.wrap(new_data_key(), aad=b"").blob
    for kek_id in ("../../etc/passwd", "", "a/b", "x" * 100):
        with pytest.raises(KeyUnavailable):
            ring.unwrap(WrappedKey(kek_id, blob), aad=b"")


def test_raw_key_file_is_accepted(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    raw = os.urandom(32)
    path = keys / "kek-manual.key"
    path.write_bytes(raw)
    path.chmod(0o600)
    (keys / "CURRENT").write_text("manual\n")
    ring = FileKeyring(keys)
    wrapped = ring.wrap(b"k" * 32, aad=b"")
    assert wrapped.kek_id == "manual"
    path.write_bytes(base64.b64encode(raw) + b"\n")
    assert FileKeyring(keys).unwrap(wrapped, aad=b"") == b"k" * 32


def test_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    kek_id = FileKeyring(keys).current_kek_id()
    (keys / f"kek-{kek_id}.key").write_bytes(b"not a key")
    with pytest.raises(ConfigurationError, match="corrupt"):
        FileKeyring(keys).current_kek_id()


def test_load_or_create_secret(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with pytest.raises(KeyUnavailable):
        load_or_create_secret(keys, "blind-index", create=False)
    first = load_or_create_secret(keys, "blind-index")
    assert len(first) == 32
    assert mode_of(keys / "blind-index.key") == 0o600
    assert mode_of(keys) == 0o700
    assert load_or_create_secret(keys, "blind-index") == first
    assert load_or_create_secret(keys, "blind-index", create=False) == first
    assert load_or_create_secret(keys, "other") != first
    with pytest.raises(ConfigurationError):
        load_or_create_secret(keys, "blind-index", 64)  # wrong size: corrupt, not silently replaced
    for bad in ("../x", "kek-abc", "CURRENT", ""):
        with pytest.raises(ConfigurationError):
            load_or_create_secret(keys, bad)


def test_ensure_keyring(tmp_path: Path) -> None:
    ring = FileKeyring(tmp_path)
    assert ensure_keyring(ring) is ring
    for bad in (None, object(), "keys"):
        with pytest.raises(ConfigurationError):
            ensure_keyring(bad)


def test_default_keyring_plugin(tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(default_keyring)
    context = PluginContext(settings=Settings(data_dir=tmp_path))
    ring = pm.hook.cdp_keyring(context=context)
    assert isinstance(ring, FileKeyring)
    assert ring.keys_dir == tmp_path / "keys"

    class Kms:
        @hookspecs.hookimpl
        def cdp_keyring(self, context: Any) -> str:
            return "kms"

    pm.register(Kms())
    assert pm.hook.cdp_keyring(context=context) == "kms"  # any other plugin wins over the default


# --------------------------------------------------------------------------- blind indexes


def test_blind_index_properties() -> None:
    key = os.urandom(32)
    bidx = BlindIndexer(key)
    first = bidx.index("email", EMAIL)
    assert len(first) == 64
    assert bidx.index("email", EMAIL) == first
    assert BlindIndexer(key).index("email", EMAIL) == first  # deterministic across instances
    assert bidx.index("email", EMAIL.upper()) != first
    assert bidx.index("phone", EMAIL) != first  # kinds do not join
    assert BlindIndexer(os.urandom(32)).index("email", EMAIL) != first  # the key matters
    assert key.hex() not in repr(bidx)
    subkey = hkdf_sha256(key, b"cdp-bidx:email")  # the documented construction
    assert first == hmac.digest(subkey, EMAIL.encode(), "sha256").hex()


def test_blind_index_truncation() -> None:
    bidx = BlindIndexer(os.urandom(32))
    full = bidx.index("postcode", "SW1A 1AA")
    assert bidx.index_truncated("postcode", "SW1A 1AA", 16) == full[:4]
    eleven = bidx.index_truncated("postcode", "SW1A 1AA", 11)
    assert len(eleven) == 4
    assert int(eleven, 16) & 0x1F == 0  # the 5 bits past the 11th are cleared
    assert int(eleven, 16) >> 5 == int(full[:4], 16) >> 5
    assert bidx.index_truncated("postcode", "SW1A 1AA", 256) == full
    for bits in (0, 257):
        with pytest.raises(ConfigurationError):
            bidx.index_truncated("postcode", "x", bits)
    values = {bidx.index_truncated("postcode", str(i), 4) for i in range(200)}
    assert len(values) == 16  # 4 bits: many values share each index (deliberate false positives)


@pytest.mark.parametrize(
    ("rows", "expected", "range_"),
    [(1, 1, (1, 1)), (4, 1, (1, 1)), (1024, 9, (5, 9)), (1000, 8, (5, 8)), (100_000, 15, (9, 15))],
)
def test_recommended_bits(rows: int, expected: int, range_: tuple[int, int]) -> None:
    assert BlindIndexer.recommended_bits(rows) == expected
    assert BlindIndexer.recommended_bits_range(rows) == range_
    if rows >= 4:
        low, high = range_
        assert 2 <= rows / 2**high <= rows**0.5
        assert 2 <= rows / 2**low <= rows**0.5
        assert rows / 2 ** (high + 1) < 2  # one more bit would pin a single row
        assert rows / 2 ** (low - 1) > rows**0.5 or low == 1


def test_blind_index_rejects_short_key_and_empty_kind() -> None:
    with pytest.raises(ConfigurationError):
        BlindIndexer(b"short")
    with pytest.raises(ConfigurationError):
        BlindIndexer(os.urandom(32)).index("", "x")
    with pytest.raises(ConfigurationError):
        BlindIndexer.recommended_bits(0)


# --------------------------------------------------------------------------- signatures


def test_checkpoint_signatures(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    signer = CheckpointSigner(keys)
    message = b"audit checkpoint 1000: " + bytes(32)
    signature = signer.sign(message)
    public = signer.public_key_hex()
    assert verify_signature(public, message, signature)
    for i in range(len(message)):
        changed = bytearray(message)
        changed[i] ^= 0x01
        assert not verify_signature(public, bytes(changed), signature)
    for i in (0, 31, 63):
        forged = bytearray(signature)
        forged[i] ^= 0x01
        assert not verify_signature(public, message, bytes(forged))
    assert not verify_signature(public, message, signature[:-1])
    assert not verify_signature(CheckpointSigner(tmp_path / "other").public_key_hex(), message, signature)


def test_signing_key_persists_and_is_private(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    signer = CheckpointSigner(keys)
    assert mode_of(keys / "audit-signing.key") == 0o600
    again = CheckpointSigner(keys, create=False)
    assert again.public_key_hex() == signer.public_key_hex()
    assert signer.public_key_pem().startswith("-----BEGIN PUBLIC KEY-----")
    assert len(signer.public_key_raw()) == 32
    with pytest.raises(KeyUnavailable):
        CheckpointSigner(tmp_path / "nowhere", create=False)
    signature = signer.sign(b"m")
    for bad_key in ("not hex", signer.public_key_hex()[:-2], ""):
        assert not verify_signature(bad_key, b"m", signature)


# --------------------------------------------------------------------------- data-key store


@pytest.mark.parametrize("scan_share", [1_000_000, 0], ids=["bulk-scan", "look-ups"])
def test_key_store_returns_exactly_the_keys_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scan_share: int
) -> None:
    from cdp.crypto import keystore

    monkeypatch.setattr(keystore, "_SCAN_SHARE", scan_share)
    store = keystore.DataKeyStore(tmp_path / "keys")
    store.put((f"dk-{i}", WrappedKey("kek-1", bytes([i % 256]) * 40)) for i in range(2000))
    wanted = [f"dk-{i}" for i in range(0, 2000, 3)] + ["dk-missing"]
    found = store.get(wanted)
    assert sorted(found) == sorted(w for w in wanted if w != "dk-missing")
    assert found["dk-3"] == WrappedKey("kek-1", bytes([3]) * 40)
    store.destroy(["dk-3"])
    assert "dk-3" not in store.get(wanted)
    store.close()
