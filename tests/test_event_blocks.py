"""The encrypted columnar copy of the events (``cdp/access/_event_blocks.py``, SQLite).

A block must never let a read return anything but what the ``events`` table holds
now: every change to the table (insert into a stored range, update, delete,
erasure, retention, a renumbering of rowids, a tampered block) must show in the
next read, which is compared here with the portable row read each time. Blocks
are tiny here (3 rowids) so that the fixtures' events fill several of them.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sqlalchemy import Connection, literal_column, select, update
from test_segments_events_read import DSR, OFFICER, _assert_same, _canonical

from cdp.access import CustomerStore, database
from cdp.access import _event_block_format as block_format
from cdp.access import _event_blocks as blocks_module
from cdp.access import _events as events_module
from cdp.access import _tables as t
from cdp.access._event_scan import SKIP, EventBatch
from cdp.access._sorted_ids import gather_positions
from cdp.segments._event_pass import SKIP_ROW
from cdp.segments.attributes import SURVEY_EVENT, compute_attributes, measure_events
from cdp.segments.config import TagsConfig
from cdp.segments.definition import event_specs


@pytest.fixture
def blocked(loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> CustomerStore:
    if loaded.engine.dialect.name != "sqlite":
        pytest.skip("event blocks are kept on SQLite only")
    monkeypatch.setattr(blocks_module, "BLOCK_EVENTS", 3)
    monkeypatch.setattr(blocks_module, "MIN_TAIL_EVENTS", 2)
    return loaded


def _blocks(store: CustomerStore) -> list[tuple[int, int, str]]:
    with store.engine.begin() as conn:
        rows = conn.execute(select(t.event_blocks.c.lo, t.event_blocks.c.hi, t.event_blocks.c.key_id))
        return [(r.lo, r.hi, r.key_id) for r in rows]


def _ranges_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the ranges read row by row (not from a block) from now on."""
    calls: list[int] = []
    original = events_module._decode_sqlite  # what the blocks module imported

    def counting(conn: Connection, arrays: tuple[str, ...]) -> pl.DataFrame:
        calls.append(1)
        return original(conn, arrays)

    monkeypatch.setattr(blocks_module, "_decode_sqlite", counting)
    return calls


def test_a_second_read_comes_from_blocks_and_is_the_same(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _assert_same(blocked)
    stored = _blocks(blocked)
    assert len(stored) >= 3 and stored[0][:2] == (0, 0)  # the profile-id dictionary, then the ranges
    assert len({key for _, _, key in stored}) == 1
    read = _ranges_read(monkeypatch)
    second = _assert_same(blocked)
    assert _canonical(second).equals(_canonical(first))
    assert len(read) <= 1  # at most the short tail
    assert _assert_same(blocked, {"Survey Submitted"}).filter(pl.col("properties").is_not_null()).height >= 1
    assert _assert_same(blocked, set())["properties"].null_count() == first.height


def test_properties_are_fetched_only_for_blocks_holding_the_wanted_events(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = _assert_same(blocked)
    stored = [(lo, hi) for lo, hi, _ in _blocks(blocked) if lo]
    with blocked.engine.begin() as conn:  # per stored block, the event names of its range
        holding = {
            lo: {
                str(n)
                for n in conn.exec_driver_sql(
                    "SELECT event_name FROM events WHERE rowid >= ? AND rowid < ? AND properties IS NOT NULL",
                    (lo, hi),
                ).scalars()
            }
            for lo, hi in stored
        }
    fetched: list[int] = []
    original = blocks_module._fetch_props

    def counting(cursor: object, key: object, piece: object, wanted: object) -> None:
        fetched.append(piece.lo)  # type: ignore[attr-defined]
        original(cursor, key, piece, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(blocks_module, "_fetch_props", counting)
    for wanted in ({SURVEY_EVENT}, {"Order Completed", SURVEY_EVENT}, set()):
        fetched.clear()
        frame = _assert_same(blocked, wanted)
        assert sorted(fetched) == sorted(lo for lo, names in holding.items() if names & wanted)
        answered = everything.filter(pl.col("event_name").cast(pl.String).is_in(sorted(wanted)))
        assert frame["properties"].drop_nulls().len() == answered["properties"].drop_nulls().len()
    assert any(names & {SURVEY_EVENT} for names in holding.values())  # the fixture has survey answers
    assert any(names and not names & {SURVEY_EVENT} for names in holding.values())  # and blocks without


def test_blocks_hold_no_plaintext(blocked: CustomerStore) -> None:
    frame = _assert_same(blocked)
    with blocked.engine.begin() as conn:
        blobs = [b for row in conn.execute(select(t.event_blocks.c.core, t.event_blocks.c.props)) for b in row if b]
    names = {str(n) for n in frame["event_name"].unique().to_list()}
    people = {str(p) for p in frame["profile_id"].unique().to_list()}
    for blob in blobs:
        for text in names | people:
            assert text.encode() not in blob


def test_changed_inserted_and_deleted_events_show_in_the_next_read(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_same(blocked)
    with blocked.engine.begin() as conn:
        rowids = [r[0] for r in conn.exec_driver_sql("SELECT rowid FROM events ORDER BY rowid")]
        conn.exec_driver_sql("UPDATE events SET revenue = 12345.5 WHERE rowid = ?", (rowids[1],))
    assert 12345.5 in _assert_same(blocked)["revenue"].to_list()
    # an identity merge re-points events to another profile
    with blocked.engine.begin() as conn:
        target = conn.execute(select(t.profiles.c.id).where(t.profiles.c.status == "active")).scalars().first()
        conn.execute(update(t.events).where(t.events.c.profile_id.is_not(None)).values(profile_id=target))
    assert _assert_same(blocked)["profile_id"].cast(pl.String).unique().to_list() == [target]
    # a deleted event in the middle of a stored range, then a new one given its rowid
    _assert_same(blocked)
    with blocked.engine.begin() as conn:
        victim = conn.execute(select(t.events).where(literal_column("rowid") == rowids[4])).mappings().one()
        conn.exec_driver_sql("DELETE FROM events WHERE rowid = ?", (rowids[4],))
    assert len(_assert_same(blocked)) == len(rowids) - 1 - _unresolved(blocked)
    with blocked.engine.begin() as conn:
        conn.execute(t.events.insert().values({**dict(victim), "id": "e-reborn", "event_name": "Reborn"}))
        conn.exec_driver_sql("UPDATE events SET rowid = ? WHERE id = 'e-reborn'", (rowids[4],))
    assert "Reborn" in _assert_same(blocked)["event_name"].cast(pl.String).to_list()


def _unresolved(store: CustomerStore) -> int:
    with store.engine.begin() as conn:
        return len(conn.exec_driver_sql("SELECT 1 FROM events WHERE profile_id IS NULL").all())


def test_renumbered_rowids_and_tampered_blocks_are_dropped(blocked: CustomerStore) -> None:
    whole = _assert_same(blocked)
    stored = _blocks(blocked)
    with blocked.engine.begin() as conn:  # as if a VACUUM renumbered the rows behind the triggers' back
        conn.execute(update(t.event_blocks).where(t.event_blocks.c.lo == stored[1][0]).values(first_id="e-moved"))
    assert _canonical(_assert_same(blocked)).equals(_canonical(whole))
    with blocked.engine.begin() as conn:  # a block's ciphertext moved to another range
        a, b = stored[1][0], stored[2][0]
        core_a = conn.execute(select(t.event_blocks.c.core).where(t.event_blocks.c.lo == a)).scalar_one()
        conn.execute(update(t.event_blocks).where(t.event_blocks.c.lo == b).values(core=core_a))
    assert _canonical(_assert_same(blocked)).equals(_canonical(whole))
    assert len(_blocks(blocked)) == 0  # all dropped; the next read rebuilds them
    _assert_same(blocked)
    assert len(_blocks(blocked)) >= 3


def test_erasure_destroys_the_blocks_and_their_key(blocked: CustomerStore) -> None:
    frame = _assert_same(blocked)
    key_id = _blocks(blocked)[0][2]
    assert blocked.keystore.get([key_id])
    victim = frame.group_by("profile_id").len().sort("len", descending=True)["profile_id"][0]
    blocked.erase_subject(DSR, str(victim))
    assert _blocks(blocked) == []
    assert blocked.keystore.get([key_id]) == {}  # backups' copies of the blocks cannot be read
    after = _assert_same(blocked)
    assert str(victim) not in after["profile_id"].cast(pl.String).to_list()
    assert {k for _, _, k in _blocks(blocked)} != {key_id}


def test_retention_and_key_rotation(blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _assert_same(blocked)
    blocked.rotate_keys(OFFICER)  # the blocks' key is re-wrapped like everyone's
    read = _ranges_read(monkeypatch)
    assert _canonical(_assert_same(blocked)).equals(_canonical(before))
    assert len(read) <= 1
    later = datetime(2026, 10, 3, tzinfo=UTC) + timedelta(days=400)
    deleted = {r["rule"]: r for r in blocked.apply_retention(OFFICER, dry_run=False, at=later)}
    assert deleted["events:website"]["deleted"] >= 1
    assert _assert_same(blocked).height < before.height


def test_blocks_rebuilt_after_all_were_dropped_keep_their_key_and_erasure_destroys_it(blocked: CustomerStore) -> None:
    """Once triggers have dropped every block, the next read stores new ones under the same key,
    so the erasure that destroys the blocks' key also makes an older backup's blocks unreadable."""
    frame = _assert_same(blocked)
    first_key = _blocks(blocked)[0][2]
    with blocked.engine.begin() as conn:  # what the triggers do when every stored range changed
        conn.execute(t.event_blocks.delete())
    _assert_same(blocked)
    assert {k for _, _, k in _blocks(blocked)} == {first_key}
    victim = frame.group_by("profile_id").len().sort("len", descending=True)["profile_id"][0]
    blocked.erase_subject(DSR, str(victim))
    assert blocked.keystore.get([first_key]) == {}
    _assert_same(blocked)  # new blocks under a new key, pinned in turn
    (second_key,) = {k for _, _, k in _blocks(blocked)}
    assert second_key != first_key
    with blocked.engine.begin() as conn:
        conn.execute(t.event_blocks.delete())
    other = next(p for p in frame["profile_id"].cast(pl.String).unique().sort() if p != str(victim))
    blocked.erase_subject(DSR, other)  # no block left: the pinned key goes all the same
    assert blocked.keystore.get([second_key]) == {}


def test_blocks_under_a_key_that_is_not_the_pinned_one_are_dropped_with_their_key(blocked: CustomerStore) -> None:
    whole = _assert_same(blocked)
    key_id = _blocks(blocked)[0][2]
    with blocked.engine.begin() as conn:  # the pin names another key
        conn.execute(
            update(t.analytic_cache).where(t.analytic_cache.c.name == blocks_module.PINNED_KEY).values(key_id="k-other")
        )
    assert _canonical(_assert_same(blocked)).equals(_canonical(whole))
    assert blocked.keystore.get([key_id]) == {}
    assert {k for _, _, k in _blocks(blocked)} - {key_id}


def _legacy_core(frame: pl.DataFrame) -> bytes:
    """A block's columns as the first format stored them: plain Arrow IPC, labels Categorical."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="lz4")
    return buffer.getvalue()


def _legacy_props(props: pl.DataFrame, names: pl.Series) -> bytes:
    return _legacy_core(props)


def test_blocks_in_the_first_format_are_read_then_stored_in_the_second(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as legacy:
        legacy.setattr(blocks_module, "encode_core", _legacy_core)
        legacy.setattr(blocks_module, "encode_props", _legacy_props)
        first = _assert_same(blocked)
    seen: list[bool] = []  # per block decoded, whether it was in the second format
    original, original_codes = block_format.decode_core, block_format.decode_core_codes

    def spying(plain: bytes) -> pl.DataFrame:
        seen.append(plain.startswith(block_format.MAGIC))
        return original(plain)

    def spying_codes(plain: bytes) -> tuple[pl.DataFrame, dict[str, list[str]]]:
        seen.append(plain.startswith(block_format.MAGIC))
        return original_codes(plain)

    monkeypatch.setattr(blocks_module, "decode_core", spying)
    monkeypatch.setattr(blocks_module, "decode_core_codes", spying_codes)
    for wanted in (None, {"Survey Submitted"}, set()):
        seen.clear()
        assert _assert_same(blocked, wanted).height == first.height
        assert seen and (all(seen) if wanted is not None else not any(seen))  # rewritten by the first read


def test_the_second_format_round_trips_labels_nulls_and_properties_by_event_name() -> None:
    frame = pl.DataFrame(
        {
            "event_type": ["track", "track", None, "identify"],
            "event_name": ["Café ☕", None, "Survey Submitted", "Survey Submitted"],
            "currency": [None, None, None, None],
            "channel": ["web", "store", "web", "web"],
            "store_id": ["s-1", "s-2", None, "s-1"],
            "category": ["a", "b", "a", None],
            "_code": pl.Series([0, 1, None, 2], dtype=pl.UInt32),
        }
    ).with_columns(pl.col(c).cast(pl.Categorical) for c in block_format.LABEL_COLUMNS)
    decoded = block_format.decode_core(block_format.encode_core(frame))
    assert decoded.schema == frame.schema
    assert decoded.with_columns(pl.col(c).cast(pl.String) for c in block_format.LABEL_COLUMNS).equals(
        frame.with_columns(pl.col(c).cast(pl.String) for c in block_format.LABEL_COLUMNS)
    )
    props = pl.DataFrame({"row": pl.Series([0, 2, 3], dtype=pl.UInt32), "properties": ['{"a":1}', '{"b":2}', "{}"]})
    packed = block_format.encode_props(props, frame["event_name"].gather(props["row"]))
    every, filtered = block_format.decode_props(packed, None)
    assert filtered and every.sort("row").equals(props)
    survey, _ = block_format.decode_props(packed, {"Survey Submitted"})
    assert survey.sort("row")["row"].to_list() == [2, 3]
    assert block_format.decode_props(packed, {"Nothing"})[0].height == 0
    assert block_format.decode_props(packed, {"Café ☕"})[0]["properties"].to_list() == ['{"a":1}']


def test_reads_by_position_from_blocks(blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _assert_same(blocked)  # stores the blocks
    ids = frame["profile_id"].cast(pl.String).unique().sort().to_list()
    # Every profile of the dictionary, in its order: the codes are the positions.
    whole = blocked.events_frame(OFFICER, positions_of=pl.Series(ids))
    assert _canonical(
        whole.with_columns(pl.Series(ids).gather(whole["profile_row"]).alias("profile_id")).select(frame.columns)
    ).equals(_canonical(frame.with_columns(pl.col("profile_id").cast(pl.String))))
    blocked.set_profile_status(OFFICER, ids[0], "restricted")  # known to the dictionary, no longer active
    read = _ranges_read(monkeypatch)
    for keys in (pl.Series(ids), pl.Series(ids[::-1]), pl.Series(ids[1:]), pl.Series([ids[-1], "p_none"])):
        got = blocked.events_frame(OFFICER, positions_of=keys)
        rebuilt = got.with_columns(keys.gather(got["profile_row"]).alias("profile_id")).select(frame.columns)
        wanted = frame.with_columns(pl.col("profile_id").cast(pl.String)).filter(
            pl.col("profile_id").is_in(keys.implode()) & (pl.col("profile_id") != ids[0])
        )
        assert _canonical(rebuilt).equals(_canonical(wanted))
    assert len(read) <= 4  # at most the short tail each time: the rest came from blocks


def test_a_read_by_position_over_a_tampered_block_falls_back_to_the_rows(blocked: CustomerStore) -> None:
    frame = _assert_same(blocked)
    ids = frame["profile_id"].cast(pl.String).unique().sort()
    keys = pl.concat([ids.slice(1), ids.head(1)])  # not sorted: positions are not the dictionary's codes
    before = blocked.events_frame(OFFICER, positions_of=keys)
    stored = _blocks(blocked)
    with blocked.engine.begin() as conn:  # a block's ciphertext moved to another range
        core = conn.execute(select(t.event_blocks.c.core).where(t.event_blocks.c.lo == stored[1][0])).scalar_one()
        conn.execute(update(t.event_blocks).where(t.event_blocks.c.lo == stored[2][0]).values(core=core))
    after = blocked.events_frame(OFFICER, positions_of=keys)
    assert len(_blocks(blocked)) == 0  # read from the rows
    assert _canonical(after).equals(_canonical(before))
    rebuilt = after.with_columns(keys.gather(after["profile_row"]).alias("profile_id")).select(frame.columns)
    assert _canonical(rebuilt).equals(_canonical(frame.with_columns(pl.col("profile_id").cast(pl.String))))


class _Kept:
    """A sink that keeps what a scan hands it (and counts how often it was told to start over)."""

    def __init__(self) -> None:
        self.batches: list[EventBatch] = []
        self.resets = 0

    def reset(self) -> None:
        self.batches.clear()
        self.resets += 1

    def add(self, batch: EventBatch) -> None:
        self.batches.append(batch)


def _scanned(store: CustomerStore, keys: pl.Series) -> pl.DataFrame:
    """The attributes as a refresh computes them: from a scan, the blocks handed over as decoded."""
    return measure_events(
        lambda sink: store.scan_events(OFFICER, sink, positions_of=keys, properties_of={SURVEY_EVENT}),
        keys,
        as_of=AS_OF,
        config=TagsConfig(),
        event_specs=SPECS,
    )


def _framed(store: CustomerStore, keys: pl.Series) -> pl.DataFrame:
    frame = store.events_frame(OFFICER, positions_of=keys, properties_of={SURVEY_EVENT})
    return compute_attributes(frame, as_of=AS_OF, event_specs=SPECS, profiles=keys)


AS_OF = datetime(2027, 1, 1, tzinfo=UTC)
SPECS = event_specs(
    [
        {"event": "Order Completed", "within_days": 3650, "min_count": 1},
        {"event": "Survey Submitted", "within_days": 3650},
    ]
)


def test_a_scan_of_the_blocks_gives_the_attributes_of_the_events_frame(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 3-event block comes with its own labels; the attributes of every block handed over as
    it is decoded are those of the assembled frame, for keys in any order, with a profile that is
    no longer active and an id that is no profile."""
    frame = _assert_same(blocked)  # stores the blocks
    ids = frame["profile_id"].cast(pl.String).unique().sort().to_list()
    blocked.set_profile_status(OFFICER, ids[0], "restricted")
    read = _ranges_read(monkeypatch)
    for keys in (pl.Series(ids), pl.Series(ids[::-1]), pl.Series([ids[-1], "p_none", ids[0]])):
        scanned = _scanned(blocked, keys)
        assert scanned.equals(_framed(blocked, keys))
        assert scanned.filter(pl.col("event_count") > 0).height == len(set(keys.to_list()) & set(ids[1:]))
    assert scanned["profile_id"].to_list() == [ids[-1], "p_none", ids[0]]
    assert len(read) <= 6  # at most the short tail each time: the rest came from blocks
    assert _scanned(blocked, pl.Series(ids))["nps_latest"].drop_nulls().len() >= 1  # the survey answers came


def test_a_first_scan_reads_the_rows_and_stores_the_blocks(blocked: CustomerStore) -> None:
    ids = pl.Series(blocked.events_frame(OFFICER)["profile_id"].cast(pl.String).unique().sort())
    with blocked.engine.begin() as conn:
        conn.execute(t.event_blocks.delete())
    kept = _Kept()
    decoded: list[int] = []
    people = blocked.scan_events(OFFICER, kept, positions_of=ids, decoded=lambda: decoded.append(len(kept.batches)))
    assert people == ids.len() and sum(b.height for b in kept.batches) == blocked.events_frame(OFFICER).height
    assert len(decoded) == 1  # once, after the last range was decoded
    assert len(_blocks(blocked)) >= 3  # the ranges read row by row were stored on the way
    assert _scanned(blocked, ids).equals(_framed(blocked, ids))


def test_a_scan_over_a_tampered_block_starts_over_from_the_rows(blocked: CustomerStore) -> None:
    frame = _assert_same(blocked)
    ids = frame["profile_id"].cast(pl.String).unique().sort()
    before = _scanned(blocked, ids)
    stored = _blocks(blocked)
    with blocked.engine.begin() as conn:  # the last block's ciphertext moved to the range before it
        core = conn.execute(select(t.event_blocks.c.core).where(t.event_blocks.c.lo == stored[-1][0])).scalar_one()
        conn.execute(update(t.event_blocks).where(t.event_blocks.c.lo == stored[-2][0]).values(core=core))
    kept = _Kept()
    assert blocked.scan_events(OFFICER, kept, positions_of=ids) == ids.len()
    assert kept.resets == 1 and sum(b.height for b in kept.batches) == frame.height  # nothing seen twice
    assert len(_blocks(blocked)) == 0  # all dropped; read from the rows
    assert _scanned(blocked, ids).equals(before)


def test_a_sink_that_fails_stops_the_reading_thread_and_leaves_the_store_usable(blocked: CustomerStore) -> None:
    frame = _assert_same(blocked)
    ids = frame["profile_id"].cast(pl.String).unique().sort()
    assert len(_blocks(blocked)) > 3

    class Failing(_Kept):
        def add(self, batch: EventBatch) -> None:
            raise RuntimeError("the sink failed")

    with pytest.raises(RuntimeError, match="the sink failed"):
        blocked.scan_events(OFFICER, Failing(), positions_of=ids)
    assert not [t for t in threading.enumerate() if t.name.startswith("cdp-block-")]  # none left running
    kept = _Kept()
    assert blocked.scan_events(OFFICER, kept, positions_of=ids) == ids.len()  # not locked, nothing half-done
    assert sum(b.height for b in kept.batches) == frame.height


def test_the_reading_runs_at_most_read_ahead_ranges_ahead_of_a_slow_sink(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink slower than the reading (the attributes' pass) holds at most READ_AHEAD ranges read
    and not yet taken, not every block at once; blocks holding survey answers fetch their
    properties beside the reading thread (before, they waited for it to finish: with a bound,
    that would never come). The attributes are those of the frame."""
    frame = _assert_same(blocked)
    ids = frame["profile_id"].cast(pl.String).unique().sort()
    monkeypatch.setattr(blocks_module, "READ_AHEAD", 2)
    opened: list[int] = []
    original = blocks_module._with_contents

    def counting(cursor: object, row: object, **kwargs: bool) -> object:
        opened.append(1)
        return original(cursor, row, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(blocks_module, "_with_contents", counting)
    ahead: list[int] = []

    class Slow(_Kept):
        def add(self, batch: EventBatch) -> None:
            time.sleep(0.02)  # the reading thread would run to the end meanwhile, unbounded
            # read, not yet handed over: all opened but the dictionary, those taken and this one
            ahead.append(len(opened) - 1 - len(self.batches) - 1)
            super().add(batch)

    slow = Slow()
    done: list[int] = []
    scan = threading.Thread(
        target=lambda: done.append(blocked.scan_events(OFFICER, slow, positions_of=ids, properties_of={SURVEY_EVENT}))
    )
    scan.start()
    scan.join(timeout=60)
    assert not scan.is_alive() and done == [ids.len()]  # finished, not stuck on a pending block
    assert len(slow.batches) >= 5 and max(ahead) <= 2  # the bound
    assert sum(b.height for b in slow.batches) == frame.height
    assert sum(b.properties.height for b in slow.batches) >= 1  # the survey answers were fetched
    monkeypatch.setattr(blocks_module, "READ_AHEAD", 1)
    assert _scanned(blocked, ids).equals(_framed(blocked, ids))


def test_blocks_are_read_through_a_small_page_cache_then_the_connections_own_is_back(
    blocked: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block's pages are read once: a scan reads them with a 2 MiB page cache, not the
    connection's 64 MiB (which they would fill with fresh memory), and puts the size back."""
    frame = _assert_same(blocked)
    ids = frame["profile_id"].cast(pl.String).unique().sort()
    seen: list[int] = []
    original = database.small_page_cache

    @contextlib.contextmanager
    def watched(connection: Connection) -> Iterator[None]:
        with original(connection):
            seen.append(int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one()))
            yield
        seen.append(int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one()))

    monkeypatch.setattr(blocks_module, "small_page_cache", watched)
    assert blocked.scan_events(OFFICER, _Kept(), positions_of=ids) == ids.len()
    assert seen == [-database.SQLITE_BULK_READ_CACHE_KIB, -database.SQLITE_CACHE_KIB]
    seen.clear()
    assert blocked.events_frame(OFFICER).height == frame.height
    assert seen == [-database.SQLITE_BULK_READ_CACHE_KIB, -database.SQLITE_CACHE_KIB]


def test_positions_by_one_merge_are_those_of_a_search() -> None:
    """The dictionary's ids and the keys, both sorted, are matched by one merge of their bytes
    (``_sorted_ids.pyx``): the same positions as a look-up of each, for ids of any length and
    script; lists that are not strictly sorted are left to the searches."""
    rng = np.random.default_rng(11)
    alphabet = ["a", "b", "z", "é", "ß", "中", "😀", "_", "0"]
    words = {"".join(rng.choice(alphabet, rng.integers(0, 6))) for _ in range(3000)}
    keys = sorted(w for w in words if rng.random() < 0.7)
    ids = sorted(w for w in words if rng.random() < 0.5)
    merged = blocks_module._merged(pl.Series(ids), pl.Series(keys))
    at = {k: i for i, k in enumerate(keys)}
    assert merged is not None and merged.tolist() == [at.get(i, SKIP) for i in ids]
    assert blocks_module._merged(pl.Series(ids[::-1]), pl.Series(keys)) is None
    assert blocks_module._merged(pl.Series(ids), pl.Series([keys[1], keys[0]])) is None
    assert blocks_module._merged(pl.Series(["a", "a"]), pl.Series(keys)) is None
    inactive = pl.Series([ids[1]])
    found = blocks_module._positions(pl.Series("id", ids), pl.Series(keys), inactive).to_list()
    assert found == [None if i == ids[1] else at.get(i) for i in ids]
    assert SKIP_ROW == SKIP  # the compiled pass leaves out the rows the scan marks


def test_a_blocks_profile_positions_by_one_compiled_gather_are_numpys() -> None:
    """``gather_positions``: each event's profile position and the profiles seen, as numpy's fancy
    indexing gives them; a code past the positions is refused, not read out of bounds."""
    rng = np.random.default_rng(5)
    positions = rng.integers(0, 500, 300).astype(np.uint32)
    positions[rng.random(300) < 0.2] = SKIP  # not among the keys, or inactive
    codes = rng.integers(0, 300, 5000).astype(np.uint32)
    rows = np.empty(codes.size, dtype=np.uint32)
    seen = np.zeros(501, dtype=np.bool_)
    gather_positions(codes, positions, rows, seen.view(np.uint8))
    want = np.zeros(501, dtype=np.bool_)
    want[np.minimum(positions[codes], 500)] = True
    assert rows.tolist() == positions[codes].tolist()
    assert seen.tolist() == want.tolist() and want[:-1].any() and want[-1]
    with pytest.raises(ValueError, match="past the positions"):
        gather_positions(np.array([0, 300], dtype=np.uint32), positions, np.empty(2, np.uint32), seen.view(np.uint8))
    with pytest.raises(ValueError, match="one row per code"):
        gather_positions(codes, positions, np.empty(3, np.uint32), seen.view(np.uint8))
