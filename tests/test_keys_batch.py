"""Fast paths of ingestion's key creation and transactions, each compared with the plain path.

``FileKeyring.wrap_many`` (one check of the current KEK and one CSPRNG read per call) must make
exactly what ``wrap`` makes; ``create_keys`` must make the same keys with a keyring that has no
``wrap_many`` (a plugin's); the ingest writer's grouping must write every batch once, in order,
with the last cursor of each group.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cdp._exceptions import DecryptionFailed
from cdp.access import CustomerStore
from cdp.connectors import runner
from cdp.connectors._worker import Batch
from cdp.connectors.runner import RunStats, _Writer
from cdp.crypto import FileKeyring, Keyring, WrappedKey
from cdp.model import IngestOutcome


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


class _FakeStore:
    """Records the transactions the writer makes."""

    def __init__(self) -> None:
        self.groups: list[tuple[list[int], Any]] = []

    def quarantine_many(self, ctx: Any, entries: list[Any]) -> int:
        return len(entries)

    def ingest_ready(self, ctx: Any, batches: list[list[Any]], *, cursor: Any, converted: bool) -> list[IngestOutcome]:
        self.groups.append(([len(b) for b in batches], cursor[2]))
        return [IngestOutcome(len(b), 0) for b in batches]

    def set_cursor(self, ctx: Any, connector: str, stream: str, state: Any) -> None:
        self.groups.append(([], state))


def _batch(size: int, n: int) -> Batch:
    return Batch([("r",)] * size, [], {"line": n})


def test_writer_groups_batches_up_to_the_record_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "GROUP_WAIT", 5.0)  # generous: the submissions below take microseconds
    fake = _FakeStore()
    stats = RunStats("website")
    writer = _Writer(fake, "website", stats, converted=False)  # type: ignore[arg-type]
    for n in range(6):
        writer.submit(_batch(2000, n))
    writer.close()
    # The first transaction waited for GROUP_RECORDS (8,000: four batches) and took what else had
    # queued by then; each batch is written once, in order, with its group's last cursor.
    sizes = [sizes for sizes, _ in fake.groups]
    assert [n for group in sizes for n in group] == [2000] * 6
    assert len(sizes[0]) >= 4 and all(len(group) >= 1 for group in sizes)
    ends = [sum(len(group) for group in sizes[: i + 1]) - 1 for i in range(len(sizes))]
    assert [cursor for _, cursor in fake.groups] == [{"line": end} for end in ends]
    assert stats.accepted == 12_000


def test_writer_never_groups_more_than_group_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "GROUP_WAIT", 5.0)
    fake = _FakeStore()
    writer = _Writer(fake, "website", RunStats("website"), converted=False)  # type: ignore[arg-type]
    for n in range(runner.GROUP_BATCHES + 1):
        writer.submit(_batch(10, n))
    writer.close()
    assert [sizes for sizes, _ in fake.groups] == [[10] * runner.GROUP_BATCHES, [10]]
    assert [cursor for _, cursor in fake.groups] == [{"line": runner.GROUP_BATCHES - 1}, {"line": runner.GROUP_BATCHES}]


def test_writer_does_not_wait_longer_than_group_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "GROUP_WAIT", 0.05)
    fake = _FakeStore()
    writer = _Writer(fake, "website", RunStats("website"), converted=False)  # type: ignore[arg-type]
    writer.submit(_batch(10, 0))
    deadline = time.monotonic() + 10
    while not fake.groups and time.monotonic() < deadline:  # a slow source: written alone, not held back
        time.sleep(0.01)
    assert fake.groups == [([10], {"line": 0})]
    writer.submit(_batch(10, 1))
    writer.close()
    assert fake.groups == [([10], {"line": 0}), ([10], {"line": 1})]
