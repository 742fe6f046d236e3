"""The key store's packed scan (``every_blob_by_kek_soon``) returns exactly what the row-by-row scan returns."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from cdp.crypto import WrappedKey
from cdp.crypto import keystore as keystore_module


def _store(tmp_path: Path, count: int = 40) -> keystore_module.DataKeyStore:
    store = keystore_module.DataKeyStore(tmp_path / "keys")
    store.put((f"k{i}", WrappedKey("kek-a" if i % 3 else "kek-b", os.urandom(61))) for i in range(count))
    return store


def _fallbacks(monkeypatch: pytest.MonkeyPatch, store: keystore_module.DataKeyStore) -> list[int]:
    calls: list[int] = []
    row_scan = store.every_blob_by_kek

    def counting() -> dict[str, dict[str, bytes]]:
        calls.append(1)
        return row_scan()

    monkeypatch.setattr(store, "every_blob_by_kek", counting)
    return calls


def test_the_packed_scan_is_the_row_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    store.destroy(["k3", "k4"])  # shredded keys are gone from both
    expected = store.every_blob_by_kek()
    calls = _fallbacks(monkeypatch, store)
    found = store.every_blob_by_kek_soon()()
    assert found == expected
    assert calls == []  # packed, not sent down the row path
    assert set(found) == {"kek-a", "kek-b"} and "k3" not in found["kek-b"] and "k4" not in found["kek-a"]
    assert all(type(blob) is bytes for blobs in found.values() for blob in blobs.values())
    assert not any(t.name == "cdp-key-scan" for t in threading.enumerate())  # joined: the caller may fork
    store.close()


def test_an_empty_store_scans_to_nothing(tmp_path: Path) -> None:
    store = keystore_module.DataKeyStore(tmp_path / "keys")
    assert store.every_blob_by_kek_soon()() == {} == store.every_blob_by_kek()
    store.close()


@pytest.mark.parametrize("oddity", ["separator-in-id", "unequal-sizes", "null-id", "thread-fails"])
def test_what_the_packed_scan_cannot_take_goes_down_the_row_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, oddity: str
) -> None:
    store = _store(tmp_path)
    if oddity == "separator-in-id":
        store.put([("k\x1f1", WrappedKey("kek-a", os.urandom(61)))])
    elif oddity == "unequal-sizes":
        store.put([("k-long", WrappedKey("kek-b", os.urandom(77)))])
    elif oddity == "null-id":
        with sqlite3.connect(store.path) as conn:
            conn.execute("INSERT INTO data_keys (id, kek_id, blob) VALUES (NULL, 'kek-a', ?)", (os.urandom(61),))
    expected = store.every_blob_by_kek()
    calls = _fallbacks(monkeypatch, store)
    if oddity == "thread-fails":
        connect = sqlite3.connect

        def failing(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            if threading.current_thread() is not threading.main_thread():
                raise sqlite3.OperationalError("unable to open database file")
            conn: sqlite3.Connection = connect(*args, **kwargs)
            return conn

        monkeypatch.setattr(sqlite3, "connect", failing)  # the module the keystore connects through
    assert store.every_blob_by_kek_soon()() == expected
    assert calls == [1]
    store.close()
