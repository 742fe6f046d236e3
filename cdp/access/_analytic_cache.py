"""Encrypted caches of values derived for analytics, inside the database (birth years, golden rows).

Why it exists: the age band of a profile needs its date of birth, a direct
identifier stored only under the person's own key. Decrypting it for every
person on every segment refresh (one key unwrap and one AES-GCM call each) was
most of the profile read at 1M profiles. The cache keeps, per identity record,
the *birth year* (a generalisation of the date of birth, classified as a
quasi-identifier in ``policies/fields.yaml``) together with the nonce of the
ciphertext it came from. A later read takes the year when the record's token
still has that nonce (the same ciphertext, so the same date), and decrypts only
the people whose age band a year cannot settle (their band changes during the
year) or who are not cached yet. The golden cache (``_golden_cache.py``) is stored
the same way.

Guarantees: a cache is one row of ``analytic_cache``, its body AES-256-GCM under
a data key of its own (wrapped by the KEK, re-wrapped by key rotation, bound to
the row's name and key id, and the rules it was computed under when given, as
associated data); ``shred_analytic_copies`` destroys those keys and rows, with
the event blocks, whenever records or events are deleted for a person (erasure,
its replay after a restore, retention), so a copy in a backup becomes unreadable
with the person. Nothing is written outside the database.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, delete, insert, select

from cdp.access import _tables as t
from cdp.access._arrow_ipc import ipc_lz4, read_ipc
from cdp.access._core import StoreCore, now
from cdp.access._event_blocks import BlockKey, shred_event_blocks
from cdp.access.database import small_page_cache
from cdp.crypto.envelope import encode_aad

_NONCE = 12
BIRTH_YEARS = "birth_years"
BIRTH_YEAR_SCHEMA = {"record_id": pl.String, "nonce": pl.Binary, "year": pl.Int16}
GOLDEN_PROFILES = "golden_profiles"  # the golden frame's inputs per active profile (``_profile_frame.py``)


def _aad(name: str, key_id: str, context: str) -> bytes:
    # ``context`` (the rules a cache was computed under) is bound only when given, so the
    # birth-year cache's associated data is what it was before the golden cache came.
    return encode_aad("analytic_cache", name, key_id, *([context] if context else []))


def load(
    store: StoreCore, conn: Connection, name: str, context: str = "", *, columns: Sequence[str] | None = None
) -> tuple[pl.DataFrame | None, BlockKey]:
    """The cache ``name`` (None if absent, unreadable or computed under another ``context``)
    and the key to write it back with (a rewritten cache keeps its key: an erasure shreds it).
    ``columns``: only these are decoded (all of them must be in the cache)."""
    with small_page_cache(conn):  # its pages are read once: not kept in a 64 MiB cache
        row = conn.execute(
            select(t.analytic_cache.c.key_id, t.analytic_cache.c.body).where(t.analytic_cache.c.name == name)
        ).first()
    key = BlockKey(store, conn, row.key_id if row is not None else None)
    if row is None or key.key_id is None:  # absent, or its key was shredded
        return None, key
    key_id, aead = key.aead()
    body = memoryview(row.body)  # the ciphertext is not copied out of the row to be opened
    try:
        plain = aead.decrypt(body[:_NONCE], body[_NONCE:], _aad(name, key_id, context))
    except (InvalidTag, ValueError):  # moved, tampered with, other rules: treated as absent and rewritten
        return None, key
    return read_ipc(plain, columns), key


def save(conn: Connection, name: str, frame: pl.DataFrame, key: BlockKey, context: str = "") -> None:
    """Replace the cache ``name`` with ``frame``, encrypted under ``key`` (bound to ``context``)."""
    key_id, aead = key.aead()
    nonce = os.urandom(_NONCE)
    body = nonce + aead.encrypt(nonce, ipc_lz4(frame), _aad(name, key_id, context))
    conn.execute(delete(t.analytic_cache).where(t.analytic_cache.c.name == name))
    conn.execute(
        insert(t.analytic_cache).values(name=name, key_id=key_id, body=body, row_count=frame.height, built_at=now())
    )


def shred_analytic_copies(store: StoreCore, conn: Connection) -> None:
    """Destroy every derived copy (event blocks, caches) and their keys: called where records or
    events of a person are deleted, so no copy of theirs outlives the deletion, in backups neither."""
    shred_event_blocks(store, conn)
    key_ids = list(conn.execute(select(t.analytic_cache.c.key_id).distinct()).scalars())
    conn.execute(delete(t.analytic_cache))
    conn.execute(delete(t.golden_dirty))
    if key_ids:
        store.shred_keys(conn, key_ids)
