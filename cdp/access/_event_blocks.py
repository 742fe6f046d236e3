"""An encrypted, columnar copy of the events inside the database, for analytics reads (SQLite).

Why it exists: a segment refresh reads every event of every active profile. Even
in bulk (``_events.py``), SQLite has to walk the whole ``events`` table and build
text for every value on every refresh: about 10 s at 10 million events, the
floor of any read that makes the database produce every row again
(docs/benchmarks.md, Segments). Events are written once and rarely changed, so
the read keeps what it has already decoded: per range of about 131k rowids, the
columns as compressed Arrow IPC (laid out by ``_event_block_format.py``), encrypted with AES-256-GCM, in the
``event_blocks`` table. The next read decrypts a block instead of asking SQLite
for its rows; only ranges without a block (new events, changed ranges) are read
row by row, and are stored as blocks on the way.

Why it cannot go stale (the guarantees):

- **triggers** (migration 0003) delete the block covering an event's rowid in
  the same statement that inserts into its range, changes the event (an identity
  merge re-points it) or deletes it (erasure, retention). A block therefore only
  ever holds events that exist as they are now; which profiles are active is not
  in a block at all: it is read with the events, in the same transaction, as before;
- every read checks that the event ids at each block's first and last rowid are
  still the ones the block was built from (a ``VACUUM`` may renumber rowids),
  and drops a block that does not match;
- **encryption**: a block is ``nonce || AESGCM(data key, its layout, AAD)`` where
  the associated data binds the table, part, rowid range and key id, so a block
  moved to another range fails to decrypt. The data key is an ordinary data key
  (a ``subject_keys`` row, wrapped by the KEK in the key store, re-wrapped by
  ``cdp keys rotate``); it is referenced by id, never stored beside the blocks;
- **erasure** destroys that key and every block (``shred_event_blocks``): copies
  of a block in database backups become unreadable, like the person's own
  encrypted fields. The next read rebuilds the blocks from the rows left.

Plaintext exists only in memory during a read (no file, no temporary file).
PostgreSQL keeps no blocks: its read is one ``COPY`` (see ``_events.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from queue import SimpleQueue
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, delete, insert, select

from cdp.access import _tables as t
from cdp.access._arrow_ipc import ipc_lz4, read_ipc
from cdp.access._core import StoreCore, new_id, now
from cdp.access._event_block_format import (
    LABEL_COLUMNS,
    MAGIC,
    PROPS_SCHEMA,
    categorical_labels,
    decode_core,
    decode_core_codes,
    decode_props,
    encode_core,
    encode_props,
)
from cdp.access._event_scan import (
    SKIP,
    EventBatch,
    EventSink,
    LabelCodes,
    LabelTable,
    coded_labels,
    frame_batches,
    rows_of,
)
from cdp.access._events import (
    POSITION,
    POSITIONED_SCHEMA,
    SCHEMA,
    _decode_sqlite,
    _empty,
    _people,
    _range_sql,
    _rowid_bounds,
)
from cdp.access._sorted_ids import gather_positions, merge_positions
from cdp.access.database import small_page_cache
from cdp.crypto.envelope import encode_aad, new_data_key

BLOCK_EVENTS = 131_072  # rowids per block: the range the bulk read already uses
# The last, still growing range is stored only from this size on: a smaller one is read row by
# row on every read (~3.5 us an event), a bigger threshold leaves more of such tails, a smaller
# one more small blocks while events keep arriving between reads.
MIN_TAIL_EVENTS = BLOCK_EVENTS // 8
# Ranges read but not yet taken by the consumer, at most: a reading thread that runs ahead of a
# slower consumer (the attributes' pass) otherwise holds every block read, decrypted and decoded at
# once (~900 MB at 10M events), each in fresh memory; bounded, the next block reuses what the
# consumer let go of (docs/benchmarks.md, Segments, sixteenth session).
READ_AHEAD = 8
_NONCE = 12
_CORE = [c for c in SCHEMA if c not in ("profile_id", "properties")]


DICTIONARY_LO = 0  # the row holding the profile-id dictionary: [0, 0) covers no rowid


@dataclass
class _Piece:
    """One range's events: the columns without the profile, and per event its profile.

    A block's ``codes`` index the store-wide dictionary of profile ids (one list for all
    blocks, so a read maps 1M ids to the active ones once, not 131k per block). A range
    just read row by row has its ``profile_ids`` instead, until the dictionary codes them.
    """

    frame: pl.DataFrame  # _CORE columns, the text ones Categorical
    props: pl.DataFrame  # row (UInt32), properties (String): the events with properties only
    codes: pl.Series | None = None  # UInt32 position in the dictionary (null: no profile)
    profile_ids: pl.Series | None = None  # String, for a range read row by row
    lo: int = 0
    hi: int = 0
    ends: tuple[str, str] | None = None  # the event ids at its ends, when the range is to be stored
    props_filtered: bool = False  # ``props`` holds the wanted event names' only already
    props_pending: bool = False  # its properties blob, left in the database, holds wanted events: fetch it
    legacy: bool = False  # a stored block in the first format (``_event_block_format.py``), to rewrite
    labels: dict[str, list[str]] | None = None  # read ``coded``: each label column's codes index these
    batch: EventBatch | None = None  # while scanning: what the sink is handed (``_prepared``)


def _aad(part: str, lo: int, hi: int, key_id: str) -> bytes:
    return encode_aad("event_blocks", part, str(lo), str(hi), key_id)


def _seal_bytes(aead: AESGCM, plain: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, plain, aad)


def _open_bytes(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    sealed = memoryview(blob)  # the ciphertext is not copied out of the blob to be opened
    return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)


def _seal(aead: AESGCM, frame: pl.DataFrame, aad: bytes) -> bytes:
    return _seal_bytes(aead, ipc_lz4(frame), aad)


def _open(aead: AESGCM, blob: bytes, aad: bytes) -> pl.DataFrame:
    return read_ipc(_open_bytes(aead, blob, aad))


def _from_range(frame: pl.DataFrame, lo: int, hi: int, ends: tuple[str, str] | None) -> _Piece:
    """A range read row by row (``_decode_sqlite``'s frame) as a piece."""
    with_rows = frame.select(pl.int_range(frame.height, dtype=pl.UInt32).alias("row"), "properties")
    props = with_rows.filter(pl.col("properties").is_not_null())
    core = frame.select(_CORE)  # the labels are Categorical already
    return _Piece(core, props, profile_ids=frame["profile_id"], lo=lo, hi=hi, ends=ends)


def _block_row(piece: _Piece, aead: AESGCM, key_id: str) -> dict[str, Any]:
    assert piece.codes is not None and piece.ends is not None
    lo, hi = piece.lo, piece.hi
    return {
        "lo": lo,
        "hi": hi,
        "row_count": piece.frame.height,
        "first_id": piece.ends[0],
        "last_id": piece.ends[1],
        "key_id": key_id,
        "core": _seal_bytes(
            aead, encode_core(piece.frame.with_columns(piece.codes.alias("_code"))), _aad("core", lo, hi, key_id)
        ),
        "props": _seal_bytes(
            aead,
            encode_props(piece.props, piece.frame["event_name"].gather(piece.props["row"])),
            _aad("props", lo, hi, key_id),
        )
        if piece.props.height
        else None,
        "built_at": now(),
    }


def _unseal(aead: AESGCM, row: Sequence[Any], wanted: Collection[str] | None, coded: bool = False) -> _Piece:
    """A stored block as a piece; of the properties, only those of the ``wanted`` event names (None: all).

    ``coded``: the label columns as the block stores them (codes into ``labels``), not Categorical.
    A block fetched without its properties (``_with_contents(props=False)``) is marked
    ``props_pending`` when it holds events of a wanted name: the caller fetches them.
    """
    lo, hi, key_id, core_blob, props_blob = row[0], row[1], row[5], row[6], row[7]
    held = props_blob is not None or (len(row) > 8 and bool(row[8]))
    plain = _open_bytes(aead, core_blob, _aad("core", lo, hi, key_id))
    legacy = not plain.startswith(MAGIC)
    if legacy:
        core, labels = decode_core(plain), None
    else:
        core, labels = decode_core_codes(plain)
    pending = False
    if props_blob is not None:
        props, filtered = decode_props(_open_bytes(aead, props_blob, _aad("props", lo, hi, key_id)), wanted)
    else:
        props, filtered = pl.DataFrame(schema=PROPS_SCHEMA), True
        # The block's own event names are in its (decrypted) header: most blocks hold no wanted one.
        names = None if labels is None else labels["event_name"]
        pending = held and (wanted is None or names is None or not set(wanted).isdisjoint(names))
    if labels is not None and not coded:
        core = categorical_labels(core, labels)
    return _Piece(
        core.select(_CORE),
        props,
        labels=labels if coded else None,
        codes=core["_code"],
        lo=lo,
        hi=hi,
        ends=(row[3], row[4]) if legacy else None,
        props_filtered=filtered,
        props_pending=pending,
        legacy=legacy,
    )


def _fetch_props(cursor: Any, key: BlockKey, piece: _Piece, wanted: Collection[str] | None) -> None:
    """Fetch and decode the properties of a block marked ``props_pending`` (by the thread handing
    the pieces on, on a cursor of its own beside the reading thread's); a batch built already gets them."""
    assert key.key_id is not None
    blob = cursor.execute("SELECT props FROM event_blocks WHERE lo = ?", [piece.lo]).fetchone()[0]
    plain = _open_bytes(key.aead()[1], blob, _aad("props", piece.lo, piece.hi, key.key_id))
    piece.props, piece.props_filtered = decode_props(plain, wanted)
    piece.props_pending = False
    if piece.batch is not None:
        piece.batch = replace(piece.batch, properties=_wanted_props(piece, wanted))


def _wanted_props(piece: _Piece, wanted: Collection[str] | None) -> pl.DataFrame:
    """The piece's properties of the ``wanted`` event names only (None: all)."""
    props = piece.props
    if wanted is not None and props.height and not piece.props_filtered:
        names = piece.frame["event_name"].cast(pl.String).gather(props["row"])
        props = props.filter(names.is_in(sorted(wanted))) if wanted else props.clear()
    return props


def _dictionary_row(ids: pl.Series, aead: AESGCM, key_id: str) -> dict[str, Any]:
    lo = hi = DICTIONARY_LO
    return {
        "lo": lo,
        "hi": hi,
        "row_count": ids.len(),
        "first_id": "",
        "last_id": "",
        "key_id": key_id,
        "core": _seal(aead, ids.alias("id").to_frame(), _aad("dictionary", lo, hi, key_id)),
        "props": None,
        "built_at": now(),
    }


class BlockKey:
    """The blocks' data key: the existing blocks' one, or a new one made when a block is first stored."""

    def __init__(self, store: StoreCore, conn: Connection, key_id: str | None) -> None:
        self._store, self._conn = store, conn
        self.key_id = key_id
        self._aead: AESGCM | None = None
        if key_id is not None:
            wrapped = store.keystore.get([key_id]).get(key_id)
            if wrapped is None:  # shredded: its blocks are unreadable; a new key starts over
                self.key_id = None
            else:
                self._aead = AESGCM(store.keyring.unwrap(wrapped, aad=key_id.encode()))

    def aead(self) -> tuple[str, AESGCM]:
        if self._aead is None or self.key_id is None:
            self.key_id = new_id("k")
            data_key = new_data_key()
            wrapped = self._store.keyring.wrap(data_key, aad=self.key_id.encode())
            self._store.keystore.put([(self.key_id, wrapped)])  # before the row that names it
            self._conn.execute(insert(t.subject_keys).values(id=self.key_id, kek_id=wrapped.kek_id, created_at=now()))
            self._aead = AESGCM(data_key)
        return self.key_id, self._aead


_META_COLUMNS = "lo, hi, row_count, first_id, last_id, key_id"  # a block's row without its contents
PINNED_KEY = "event_blocks_key"
"""The ``analytic_cache`` row (empty body) naming the blocks' data key while no block is left.

Triggers delete blocks; once every block is gone, the key would be named nowhere, the next read
would make another, and an erasure, which destroys the keys it can find, would leave that
earlier key alive: blocks under it in an older backup would stay readable. The pinned key is
reused instead, and destroyed by every erasure, retention and key shred with the caches.
"""


def _pinned_key_id(conn: Connection) -> str | None:
    found = conn.execute(select(t.analytic_cache.c.key_id).where(t.analytic_cache.c.name == PINNED_KEY)).scalar()
    return None if found is None else str(found)


def _pin(conn: Connection, key_id: str) -> None:
    conn.execute(delete(t.analytic_cache).where(t.analytic_cache.c.name == PINNED_KEY))
    conn.execute(insert(t.analytic_cache).values(name=PINNED_KEY, key_id=key_id, body=b"", row_count=0, built_at=now()))


def _with_contents(cursor: Any, row: tuple[Any, ...], *, props: bool = True) -> tuple[Any, ...]:
    """A block's row (``_META_COLUMNS``) with its two blobs: fetched one block at a time, so the
    first blocks are decrypted while the next are read. ``props=False``: the properties blob is
    left in the database (None), followed by whether the block has one."""
    if props:
        return (*row, *cursor.execute("SELECT core, props FROM event_blocks WHERE lo = ?", [row[0]]).fetchone())
    core, held = cursor.execute("SELECT core, props IS NOT NULL FROM event_blocks WHERE lo = ?", [row[0]]).fetchone()
    return (*row, core, None, bool(held))


def _valid_blocks(cursor: Any, conn: Connection) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
    """(the dictionary row, the blocks whose end rows are still the events they were built from).

    Blocks that fail the check are deleted; so is everything when the rows are not all under
    one key (they always are: a new key is only made once every block is gone).
    """
    rows = cursor.execute(f"SELECT {_META_COLUMNS} FROM event_blocks ORDER BY lo").fetchall()
    if len({r[5] for r in rows}) > 1 or (rows and rows[0][0] != DICTIONARY_LO):
        conn.execute(delete(t.event_blocks))
        return None, []
    dictionary = rows[0] if rows else None
    keep: list[tuple[Any, ...]] = []
    stale: list[int] = []
    for row in rows[1:]:
        lo, hi, first_id, last_id = row[0], row[1], row[3], row[4]
        first = cursor.execute("SELECT id FROM events WHERE rowid >= ? ORDER BY rowid LIMIT 1", [lo]).fetchone()
        last = cursor.execute("SELECT id FROM events WHERE rowid < ? ORDER BY rowid DESC LIMIT 1", [hi]).fetchone()
        found = (first[0] if first else None, last[0] if last else None)
        if found == (first_id, last_id) and (not keep or keep[-1][1] <= lo):
            keep.append(row)
        else:
            stale.append(lo)
    for lo in stale:
        conn.execute(delete(t.event_blocks).where(t.event_blocks.c.lo == lo))
    return dictionary, keep


def _ends(cursor: Any, lo: int, hi: int) -> tuple[str, str]:
    first = cursor.execute("SELECT id FROM events WHERE rowid >= ? AND rowid < ? ORDER BY rowid LIMIT 1", [lo, hi])
    first_id = first.fetchone()[0]
    last = cursor.execute("SELECT id FROM events WHERE rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT 1", [lo, hi])
    return first_id, last.fetchone()[0]


@dataclass
class _Read:
    """What a read of the blocks learns before its first piece, and needs after its last."""

    key: BlockKey | None = None
    positions: Future[np.ndarray] | None = None  # scanning: ``_code_positions``
    pinned: str | None = None  # the pinned key id when the read began
    stored: bool = False  # a dictionary of profile ids is stored
    dictionary: pl.Series = field(default_factory=lambda: pl.Series("id", [], dtype=pl.String))
    listed: pl.Series = field(default_factory=lambda: pl.Series("profile_id", [], dtype=pl.String))
    """The active profiles' ids; with keys, those of the others instead (to leave out: usually none)."""

    def finish(self, conn: Connection, pieces: list[_Piece]) -> pl.Series:
        """Store the ranges read row by row and rewrite first-format blocks (of ``pieces``: those
        among them); pin the key. Returns the dictionary, grown by the ranges' new profile ids."""
        assert self.key is not None
        dictionary = _code_new_ranges(conn, self.key, pieces, self.dictionary, self.stored)
        _rewrite_legacy(conn, self.key, [p for p in pieces if p.legacy])
        if self.key.key_id is not None and self.key.key_id != self.pinned:
            _pin(conn, self.key.key_id)
        return dictionary


def _pieces(
    store: StoreCore,
    conn: Connection,
    properties_of: Collection[str] | None,
    keys: pl.Series | None,
    read: _Read,
    *,
    prepare: Callable[[_Piece], _Piece] | None = None,
    finished: Callable[[], object] | None = None,
) -> Iterator[_Piece]:
    """Every range's events in rowid order: blocks where they are valid, the rest read row by row.

    The ranges are asked of SQLite on a reading thread and decoded by a pool as they come;
    the pieces come in order as they are decoded, each let go of once handed over. ``read`` is
    filled in before the first piece (its ``dictionary`` after the last). With ``prepare`` (a
    scan), blocks keep their label codes (``_Piece.labels``), each piece is passed through
    ``prepare`` on the decoding thread, and the profiles' positions in ``keys`` are looked up
    there too (``read.positions``, all taken as active: the caller leaves out the inactive ones).
    A block that fails to decrypt raises ``InvalidTag``. ``finished``: called on the decoding thread
    once the last range is decoded (its consumer may still have pieces to take).
    """
    coded = prepare is not None

    def decoded(task: Callable[[], _Piece]) -> Callable[[], _Piece]:
        return task if prepare is None else lambda: prepare(task())

    sql, _ = _range_sql(None)  # a stored block keeps every event's properties
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        low, high = _rowid_bounds(cursor)
        dictionary_row, blocks = _valid_blocks(cursor, conn) if low is not None else (None, [])
        pinned = _pinned_key_id(conn)
        if dictionary_row and pinned is not None and dictionary_row[5] != pinned:
            # Blocks under a key that is not the pinned one (never made by this code): their key
            # is destroyed with them, so no copy of them anywhere stays readable.
            conn.execute(delete(t.event_blocks))
            store.shred_keys(conn, [dictionary_row[5]])
            dictionary_row, blocks, pinned = None, [], _pinned_key_id(conn)
        key = BlockKey(store, conn, pinned if pinned is not None else dictionary_row[5] if dictionary_row else None)
        if dictionary_row and key.key_id is None:  # their key was shredded: nothing in them can be read
            conn.execute(delete(t.event_blocks))
            dictionary_row, blocks = None, []
        read.key, read.pinned, read.stored = key, pinned, dictionary_row is not None
        wanted = None if properties_of is None else set(properties_of)
        # Decoding and decrypting let go of the GIL, as SQLite does while it reads: the blocks are
        # asked of SQLite on a thread of their own, handed to the decoding pool as they come, and
        # this thread hands on each piece as soon as it is decoded (its consumer, the attributes'
        # pass, starts on the first block instead of after the last blob is read).
        with (
            # A scan's consumer (the attributes' pass) needs a core of its own: one decoding thread
            # beside the reading one keeps up with it; a frame's assembly is light, so two decode.
            ThreadPoolExecutor(max_workers=1 if coded else 2, thread_name_prefix="cdp-block-decode") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-block-read") as reading,
        ):
            pieces: SimpleQueue[Future[_Piece] | None] = SimpleQueue()
            stop = threading.Event()
            room = threading.Semaphore(READ_AHEAD)

            def wait_for_room() -> bool:
                """Block until fewer than READ_AHEAD ranges wait for the consumer; False if it stopped."""
                while not room.acquire(timeout=0.05):
                    if stop.is_set():
                        return False
                return True

            done: list[Future[object]] = []  # ``finished``, once submitted

            def read_range(lo: int, hi: int, *, tail: bool) -> bool:
                """Read [lo, hi) row by row (decoded in the pool); False if it holds no event."""
                if not wait_for_room():
                    return True  # the consumer stopped: nothing more is read
                row = cursor.execute(sql, [lo, hi]).fetchone()
                if not row[0]:
                    room.release()
                    return False
                ends = _ends(cursor, lo, hi) if not tail or row[0] >= MIN_TAIL_EVENTS else None
                arrays = tuple(row[1:])
                pieces.put(pool.submit(decoded(lambda: _from_range(_decode_sqlite(conn, arrays), lo, hi, ends))))
                return True

            def read_gap(start: int, stop_at: int, *, tail: bool) -> None:
                position = start
                while position < stop_at and not stop.is_set():
                    end = min(stop_at, position + BLOCK_EVENTS)
                    if read_range(position, end, tail=tail and end == stop_at):
                        position = end
                        continue
                    # a run of deleted rowids: seek to the next event (or past the gap)
                    following = cursor.execute("SELECT min(rowid) FROM events WHERE rowid >= ?", [end]).fetchone()[0]
                    position = stop_at if following is None else min(following, stop_at)

            def read_all(aead: AESGCM | None) -> None:
                """Every range in rowid order, each handed to the pool (the reading thread owns the
                cursor until it returns); then None, the end."""
                try:
                    position = low
                    for block in blocks:
                        if stop.is_set():
                            return
                        if position is not None and position < block[0]:
                            read_gap(position, block[0], tail=False)
                        # Wanting some event names' properties only (a segment refresh: the survey answers'),
                        # a block's properties are fetched only if its header names one (``_fetch_props``).
                        if not wait_for_room():
                            return
                        contents = _with_contents(cursor, block, props=wanted is None)
                        assert aead is not None
                        pieces.put(pool.submit(decoded(partial(_unseal, aead, contents, wanted, coded))))
                        position = block[1]
                    if position is not None and high is not None and position <= high:
                        read_gap(position, high + 1, tail=True)
                    if finished is not None:  # after every range's decoding, on the same thread
                        done.append(pool.submit(finished))
                finally:
                    pieces.put(None)

            opened = (
                pool.submit(
                    _open,
                    key.aead()[1],
                    _with_contents(cursor, dictionary_row)[6],
                    _aad("dictionary", DICTIONARY_LO, DICTIONARY_LO, key.key_id),
                )
                if dictionary_row is not None and key.key_id is not None
                else None
            )
            # With keys, the profiles not active: read from the partial index ``ix_profiles_inactive``.
            listed = cursor.execute(
                "SELECT json_group_array(id) FROM profiles WHERE status "
                + ("= 'active'" if keys is None else "!= 'active'")
            ).fetchone()[0]
            read.listed = pl.Series("profile_id", [listed]).str.json_decode(pl.List(pl.String)).explode()
            if coded and keys is not None:
                read.positions = pool.submit(_code_positions, opened, keys, read.listed)
            reader = reading.submit(read_all, key.aead()[1] if blocks else None)
            props_cursor: Any = None
            try:
                while (future := pieces.get()) is not None:
                    piece = future.result()
                    if piece.props_pending:  # on a cursor of this thread's: SQLite serialises the two
                        if props_cursor is None:
                            props_cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                        _fetch_props(props_cursor, key, piece, wanted)
                    room.release()
                    yield piece
                reader.result()  # its error, if it had one
                for call in done:
                    call.result()
            finally:
                stop.set()  # a consumer that stops early stops the reading too
                if props_cursor is not None:
                    props_cursor.close()
            if opened is not None:
                read.dictionary = opened.result()["id"]
    finally:
        cursor.close()


def read_sqlite(
    store: StoreCore, conn: Connection, properties_of: Collection[str] | None, keys: pl.Series | None = None
) -> pl.DataFrame:
    """All events of active profiles: blocks where they are valid, the rest read and stored as blocks.

    ``keys`` (unique String ids): events of those profiles only, each with its profile's
    position in them (``profile_row``) instead of ``profile_id``; only the profiles that are
    not active are read then (usually few), not the 1M active ids.
    """
    read = _Read()
    try:
        with small_page_cache(conn):  # the blocks' pages are read once: not kept in a 64 MiB cache
            pieces = list(_pieces(store, conn, properties_of, keys, read))
    except InvalidTag:
        return _read_rows_instead(conn, properties_of, keys)
    if not pieces:
        return _empty(positions=keys is not None)
    dictionary = read.finish(conn, pieces)
    if keys is None:
        # One look-up per known profile id, not per event: each event then takes its profile by code.
        ids = read.listed.sort()
        return _assemble(pieces, dictionary.cast(pl.Enum(ids), strict=False).alias("profile_id"), properties_of)
    return _assemble(pieces, _positions(dictionary, keys, read.listed), properties_of)


def _read_rows_instead(conn: Connection, properties_of: Collection[str] | None, keys: pl.Series | None) -> pl.DataFrame:
    """A block that does not decrypt under its own range and key was moved or tampered with:
    drop them all and read the rows (the next read rebuilds them)."""
    conn.execute(delete(t.event_blocks))
    from cdp.access._events import _read_sqlite

    return _read_sqlite(conn, properties_of, keys)


def scan_sqlite(
    store: StoreCore,
    conn: Connection,
    properties_of: Collection[str] | None,
    keys: pl.Series,
    sink: EventSink,
    decoded: Callable[[], object] | None = None,
) -> int:
    """The events of ``read_sqlite(..., keys)`` handed to ``sink`` piece by piece, as they are decoded
    (``_event_scan.py``); returns how many of the keys' profiles have events. ``decoded``: see
    ``CustomerStore.scan_events``.

    The decoding thread also turns each block into the batch the sink takes (``_prepared``):
    this thread only hands the batches on, in order.
    """
    read = _Read()
    wanted = None if properties_of is None else set(properties_of)
    kept: list[_Piece] = []  # ranges read row by row, to store; first-format blocks, to rewrite
    seen = np.zeros(keys.len() + 1, dtype=np.bool_)  # per key, whether it has an event (the last: SKIP's)
    try:
        with small_page_cache(conn):  # the blocks' pages are read once: not kept in a 64 MiB cache
            for piece in _pieces(
                store,
                conn,
                properties_of,
                keys,
                read,
                prepare=lambda p: _prepared(p, keys, read, wanted, seen),
                finished=decoded,
            ):
                assert piece.batch is not None
                if piece.profile_ids is not None or piece.legacy:
                    kept.append(piece)
                batch, piece.batch = piece.batch, None
                sink.add(batch)
    except InvalidTag:
        sink.reset()
        frame = _read_rows_instead(conn, properties_of, keys)
        for batch in frame_batches(frame, frame[POSITION]):
            sink.add(batch)
        return _people(frame[POSITION])
    read.finish(conn, kept)
    return int(np.count_nonzero(seen[:-1]))


def _code_positions(opened: Future[pl.DataFrame] | None, keys: pl.Series, inactive: pl.Series) -> np.ndarray:
    """Per dictionary code, its profile's position in ``keys`` (SKIP: not among them, or not
    active); one entry more, SKIP, for the code of no profile (a null)."""
    dictionary = opened.result()["id"] if opened is not None else pl.Series("id", [], dtype=pl.String)
    found: np.ndarray = np.append(rows_of(_positions(dictionary, keys, inactive)), np.uint32(SKIP))
    return found


def _prepared(piece: _Piece, keys: pl.Series, read: _Read, wanted: Collection[str] | None, seen: np.ndarray) -> _Piece:
    """The piece with the batch a sink takes: each event's profile position (marked in ``seen``),
    the label codes as the block stores them (a null coded as one past its labels), the revenue's
    nulls 0, the wanted events' properties only. Run on a decoding thread."""
    if piece.profile_ids is not None:  # a range read row by row: its profile ids, looked up
        rows = rows_of(_positions(piece.profile_ids, keys, read.listed))
        seen[np.minimum(rows, keys.len())] = True
    else:
        assert piece.codes is not None and read.positions is not None
        positions = read.positions.result()
        codes = piece.codes.fill_null(positions.size - 1) if piece.codes.null_count() else piece.codes
        rows = np.empty(codes.len(), dtype=np.uint32)
        gather_positions(np.ascontiguousarray(codes.to_numpy(), dtype=np.uint32), positions, rows, seen.view(np.uint8))
    frame = piece.frame
    if piece.labels is not None:
        labels = {
            name: LabelCodes.of(frame[name], LabelTable(piece.labels[name]), len(piece.labels[name]))
            for name in LABEL_COLUMNS
        }
    else:  # a range read row by row, or a first-format block: Categorical columns
        labels = coded_labels(frame)
    props = _wanted_props(piece, wanted)
    piece.batch = EventBatch(rows, frame["occurred_at"], frame["revenue"].fill_null(0.0), labels, props)
    return piece


def _positions(dictionary: pl.Series, keys: pl.Series, inactive: pl.Series) -> pl.Series:
    """Per dictionary code, the position in ``keys`` of its profile (null: not in ``keys``, or not active)."""
    if not inactive.len() and dictionary.len() == keys.len() and dictionary.equals(keys, check_names=False):
        return pl.int_range(keys.len(), dtype=pl.UInt32, eager=True).alias(POSITION)  # codes are positions
    merged = _merged(dictionary, keys)
    if merged is not None:  # both sorted, as they usually are: one merge
        found = pl.Series(POSITION, merged)
        valid = found != SKIP
        if inactive.len():
            valid &= ~dictionary.is_in(inactive.implode())
        return pl.select(pl.when(pl.lit(valid)).then(pl.lit(found))).to_series().alias(POSITION)
    if keys.len() and dictionary.is_sorted() and keys.is_sorted():  # binary searches
        found = keys.search_sorted(dictionary).cast(pl.UInt32)
        hit = keys.gather(found.clip(0, keys.len() - 1)) == dictionary
        if inactive.len():
            hit &= ~dictionary.is_in(inactive.implode())
        return pl.select(pl.when(pl.lit(hit)).then(pl.lit(found))).to_series().alias(POSITION)
    index = keys.alias("id").to_frame().with_row_index(POSITION)
    if inactive.len():
        index = index.filter(~pl.col("id").is_in(inactive.implode()))
    table = dictionary.alias("id").to_frame().join(index, on="id", how="left", maintain_order="left")
    return table[POSITION]


def _string_buffers(ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(the Arrow offsets, the bytes) of String ids without nulls (the bytes at least one long)."""
    array = ids.to_arrow()  # large_string: one array (Polars hands over one)
    if array.type != pa.large_string():
        array = array.cast(pa.large_string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    values = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, dtype=np.uint8)
    return offsets, values


def _merged(ids: pl.Series, keys: pl.Series) -> np.ndarray | None:
    """Per id, its position in ``keys`` (SKIP: not there) by one merge; None unless both are strictly
    sorted and without nulls (``_sorted_ids.pyx``)."""
    if ids.null_count() or keys.null_count() or not ids.len() or not keys.len():
        return None
    out = np.empty(ids.len(), dtype=np.uint32)
    ids_at, id_bytes = _string_buffers(ids.cast(pl.String))
    keys_at, key_bytes = _string_buffers(keys.cast(pl.String))
    return out if merge_positions(ids_at, id_bytes, keys_at, key_bytes, out) else None


def _code_new_ranges(
    conn: Connection, key: BlockKey, pieces: list[_Piece], dictionary: pl.Series, stored: bool
) -> pl.Series:
    """Give the ranges read row by row dictionary codes; store those to be kept, and the grown dictionary."""
    ranges = [p for p in pieces if p.profile_ids is not None]
    if not ranges:
        return dictionary
    # Codes by a join on the dictionary (a cast to an Enum of ~1M categories costs ~1 s a call).
    every = pl.concat([p.profile_ids for p in ranges if p.profile_ids is not None]).alias("id").to_frame()
    table = dictionary.alias("id").to_frame().with_row_index("code")
    coded = every.join(table, on="id", how="left", maintain_order="left")
    added = coded.filter(pl.col("code").is_null() & pl.col("id").is_not_null())["id"].unique().sort()
    if added.len():
        extra = added.to_frame().with_row_index("extra", offset=dictionary.len())
        coded = coded.join(extra, on="id", how="left", maintain_order="left").select(
            pl.coalesce("code", "extra").alias("code")
        )
        dictionary = pl.concat([dictionary, added])
    codes = coded["code"].cast(pl.UInt32)
    offset = 0
    for piece in ranges:
        assert piece.profile_ids is not None
        piece.codes = codes.slice(offset, piece.profile_ids.len())
        offset += piece.profile_ids.len()
    kept = [p for p in ranges if p.ends is not None]
    if kept:
        _store_blocks(conn, key, kept)
        if added.len() or not stored:
            key_id, aead = key.aead()
            conn.execute(delete(t.event_blocks).where(t.event_blocks.c.lo == DICTIONARY_LO))
            conn.execute(insert(t.event_blocks), [_dictionary_row(dictionary, aead, key_id)])
    return dictionary


def _rewrite_legacy(conn: Connection, key: BlockKey, pieces: list[_Piece]) -> None:
    """Store blocks read in the first format again in the second (once: later reads are faster)."""
    if not pieces:
        return
    conn.execute(delete(t.event_blocks).where(t.event_blocks.c.lo.in_([p.lo for p in pieces])))
    _store_blocks(conn, key, pieces)


def _store_blocks(conn: Connection, key: BlockKey, pieces: list[_Piece]) -> None:
    """Seal the pieces (ranges with their ends known) and insert them as blocks."""
    key_id, aead = key.aead()
    with ThreadPoolExecutor(max_workers=2) as pool:  # Arrow encoding and AES-GCM let go of the GIL
        rows = list(pool.map(lambda p: _block_row(p, aead, key_id), pieces))
    conn.execute(insert(t.event_blocks), rows)


def _assemble(pieces: list[_Piece], profiles: pl.Series, properties_of: Collection[str] | None) -> pl.DataFrame:
    """The pieces as one frame of the events whose profile is known: ``profiles`` gives each
    dictionary code's value of the profile column (an Enum of the active ids, or a position)."""
    name = profiles.name
    wanted = None if properties_of is None else sorted(properties_of)
    frames: list[pl.DataFrame] = []
    for piece in pieces:
        assert piece.codes is not None
        properties = pl.repeat(None, piece.frame.height, dtype=pl.String, eager=True)
        props = piece.props
        if wanted is not None and props.height and not piece.props_filtered:
            names = piece.frame["event_name"].gather(props["row"])
            props = props.filter(names.is_in(wanted)) if wanted else props.clear()
        if props.height:
            properties = properties.scatter(props["row"], props["properties"])
        frames.append(
            piece.frame.with_columns(profiles.gather(piece.codes).alias(name), properties.alias("properties"))
        )
    frame = pl.concat(frames, rechunk=False).select(list(SCHEMA if name == "profile_id" else POSITIONED_SCHEMA))
    return frame.filter(pl.col(name).is_not_null())


def shred_event_blocks(store: StoreCore, conn: Connection) -> int:
    """Delete every block and destroy their data key (erasure: backups' copies become unreadable)."""
    key_ids = list(conn.execute(select(t.event_blocks.c.key_id).distinct()).scalars())
    pinned = _pinned_key_id(conn)
    key_ids += [pinned] if pinned is not None and pinned not in key_ids else []
    deleted = conn.execute(delete(t.event_blocks)).rowcount or 0
    conn.execute(delete(t.analytic_cache).where(t.analytic_cache.c.name == PINNED_KEY))
    if key_ids:
        store.shred_keys(conn, key_ids)
    return deleted
