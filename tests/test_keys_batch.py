"""The fast path of ingestion's key creation, compared with the plain path.

``FileKeyring.wrap_many`` (one check of the current KEK and one CSPRNG read per call) must make
exactly what ``wrap`` makes, and ``create_keys`` must make the same keys with a keyring that has no
``wrap_many`` (a plugin's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdp._exceptions import DecryptionFailed
from cdp.access import CustomerStore
from cdp.crypto import FileKeyring, Keyring, WrappedKey


def test_wrap_many_makes_what_wrap_makes(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keys")
    keys = [bytes([n]) * 32 for n in range(5)]
    aads = [f"k_{n}".encode() for n in range(5)]
    many = keyring.wrap_many(keys, aads)
    one_by_one = [keyring.wrap(key, aad=aad) for key, aad in zip(keys, aads, strict=True)]
    assert [w.kek_id for w in many] == [w.kek_id for w in one_by_one] == [keyring.current_kek_id()] * 5
    assert [len(w.blob) for w in many] == [len(w.blob) for w in one_by_one]
    assert [w.blob[:1] for w in many] == [w.blob[:1] for w in one_by_one]
    assert len({w.blob[1:13] for w in many}) == 5  # a nonce of its own per key
    for wrapped, plain, key, aad in zip(many, one_by_one, keys, aads, strict=True):
        assert keyring.unwrap(wrapped, aad=aad) == keyring.unwrap(plain, aad=aad) == key
    with pytest.raises(DecryptionFailed):  # bound to its key id like wrap's
        keyring.unwrap(many[0], aad=aads[1])
    with pytest.raises(ValueError):
        keyring.wrap_many(keys, aads[:2])
    assert keyring.wrap_many([], []) == []


def test_wrap_many_follows_a_rotation(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keys")
    before = keyring.wrap_many([b"\x01" * 32], [b"a"])[0]
    other = FileKeyring(tmp_path / "keys")  # another process's view of the same keys directory
    rotated = other.rotate()
    after = keyring.wrap_many([b"\x02" * 32], [b"b"])[0]
    assert before.kek_id != rotated and after.kek_id == rotated
    assert other.unwrap(after, aad=b"b") == b"\x02" * 32


class _PluginKeyring:
    """A keyring with only the protocol's methods (no ``wrap_many``), delegating to a real one."""

    def __init__(self, inner: FileKeyring) -> None:
        self.inner = inner
        self.wraps = 0

    def current_kek_id(self) -> str:
        return self.inner.current_kek_id()

    def wrap(self, data_key: bytes, *, aad: bytes) -> WrappedKey:
        self.wraps += 1
        return self.inner.wrap(data_key, aad=aad)

    def unwrap(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        return self.inner.unwrap(wrapped, aad=aad)

    def rotate(self) -> str:
        return self.inner.rotate()

    def kek_ids(self) -> list[str]:
        return self.inner.kek_ids()

    def retire(self, kek_id: str) -> None:
        self.inner.retire(kek_id)


def _check_keys(store: CustomerStore, made: list[Any]) -> None:
    """Each made key is in the key store, unwraps to the cipher's key and decrypts what it encrypted."""
    ids = [key_id for key_id, _, _ in made]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    tokens = {key_id: cipher.encrypt("pat@example.org", record_id="r_1", field="email") for key_id, cipher, _ in made}
    assert store.keystore.get(ids).keys() == set(ids)
    for key_id in ids:
        store._ciphers.pop(key_id)  # read back from the key store, as another process would
    for key_id, _, kek_id in made:
        cipher = store.cipher(store.engine.connect(), key_id)
        assert cipher.decrypt(tokens[key_id], record_id="r_1", field="email") == "pat@example.org"
        assert store.keystore.get([key_id])[key_id].kek_id == kek_id


def test_create_keys_fast_path_matches_a_keyring_without_wrap_many(store: CustomerStore) -> None:
    assert isinstance(store.keyring, FileKeyring)
    fast = store.create_keys(40)
    _check_keys(store, fast)
    plugin = _PluginKeyring(store.keyring)
    assert isinstance(plugin, Keyring) and not hasattr(plugin, "wrap_many")
    store.keyring = plugin
    plain = store.create_keys(40)
    assert plugin.wraps == 40
    _check_keys(store, plain)
    assert {kek for _, _, kek in fast} == {kek for _, _, kek in plain}
    assert len({cipher._data_key for _, cipher, _ in fast + plain}) == 80  # every key its own
