"""The golden cache of ``profile_frame`` (``cdp/access/_golden_cache.py``, SQLite).

A read from the cache must be ``read_profiles`` value for value after any change to
the store (new records, merges and splits, rectification, erasure, a shredded key,
consent, a profile's status, the survivorship rules, another day); the cache must be
encrypted, its out-of-date profiles marked by the triggers in the statement that
changes them, and gone with its key on any shred.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select, update
from test_profile_frame import CONTEXTS, FIELDS, TODAY, _assert_same, _decryptions, _one_record_each
from test_segments_events_read import DSR, OFFICER

from cdp.access import AccessContext, CustomerStore
from cdp.access import _analytic_cache as analytic_cache
from cdp.access import _arrow_ipc as arrow_ipc
from cdp.access import _profile_frame as frame_module
from cdp.access import _tables as t
from cdp.access._analytic_cache import GOLDEN_PROFILES
from cdp.access.context import classifier_context
from cdp.identity.manual import merge_profiles, split_record

ENGINEER = AccessContext("user:eng", "data_engineer", "operations")
PROFILING = classifier_context("profiling")


def _golden(store: CustomerStore) -> tuple[str, int, bytes] | None:
    """key_id, row_count and body of the golden cache's row, if there is one."""
    with store.engine.begin() as conn:
        row = conn.execute(
            select(t.analytic_cache.c.key_id, t.analytic_cache.c.row_count, t.analytic_cache.c.body).where(
                t.analytic_cache.c.name == GOLDEN_PROFILES
            )
        ).first()
    return None if row is None else (row.key_id, row.row_count, bytes(row.body))


@pytest.fixture
def sqlite_only(loaded: CustomerStore) -> CustomerStore:
    if loaded.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL keeps no golden cache (its read is uncached; test_profile_frame.py covers it)")
    return loaded


def _active(store: CustomerStore) -> list[str]:
    with store.engine.begin() as conn:
        return sorted(conn.execute(select(t.profiles.c.id).where(t.profiles.c.status == "active")).scalars())


def _dirty(store: CustomerStore) -> set[str]:
    with store.engine.begin() as conn:
        return set(conn.execute(select(t.golden_dirty.c.profile_id)).scalars())


def _with_records(store: CustomerStore) -> int:
    """How many active profiles have an active record: the golden cache's rows."""
    with store.engine.begin() as conn:
        return int(
            conn.execute(
                select(func.count(t.profiles.c.id.distinct()))
                .join(t.record_links, t.record_links.c.profile_id == t.profiles.c.id)
                .join(t.records, t.records.c.id == t.record_links.c.record_id)
                .where(
                    t.profiles.c.status == "active",
                    t.records.c.status == "active",
                    t.record_links.c.unlinked_at.is_(None),
                )
            ).scalar_one()
        )


def _records_of(store: CustomerStore, person: str) -> list[tuple[str, str]]:
    with store.engine.begin() as conn:
        rows = conn.execute(
            select(t.records.c.id, t.records.c.key_id)
            .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
            .where(t.record_links.c.profile_id == person, t.record_links.c.unlinked_at.is_(None))
            .order_by(t.records.c.id)
        )
        return [(r.id, r.key_id) for r in rows]


def test_warm_read_reads_no_record_and_decrypts_nothing(
    sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_only
    first = _assert_same(store, PROFILING)
    cached = _golden(store)
    assert cached is not None and cached[1] == _with_records(store) >= first.height
    with pytest.raises(Exception):
        pl.read_ipc(cached[2])  # encrypted, not Arrow

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the warm read went to the records")

    monkeypatch.setattr(frame_module, "_records", refuse)
    monkeypatch.setattr(frame_module, "_decrypt_birth_dates", refuse)
    for ctx in CONTEXTS:
        if ctx.purpose != "compliance":  # compliance reads restricted people too: never cached
            _assert_same(store, ctx)
            _assert_same(store, ctx, ("postcode", "country", "age_band"))  # masking at read time
    assert _golden(store) == cached  # read, not rewritten


def _new_people(store: CustomerStore, folder: Path, step: int) -> None:
    """A survey file: a new person, and an existing one (same email) with another birth date."""
    from fixtures import SURVEY_HEADER

    from cdp.pipeline import SourceSpec, ingest, resolve

    rows = [
        f"s-new-{step}-a,2026-10-2{step % 10}T12:00:00Z,New Person{step},new{step}@example.com,,FR,Lyon,69001,"
        f"19{50 + step % 40}-0{1 + step % 9}-1{step % 10},7,4,tech,fine,yes",
        f"s-new-{step}-b,2026-10-2{step % 10}T13:00:00Z,alice smith,alice.smith@example.com,,US,Oakland,94601,"
        f"1991-12-3{step % 2},9,5,home,ok,no",
    ]
    path = folder / f"survey-{step}.csv"
    path.write_text("\n".join([SURVEY_HEADER, *rows]) + "\n", encoding="utf-8")
    ingest(store, store.settings, SourceSpec("survey", {"path": str(path)}))
    resolve(store, store.settings)


def _changes(store: CustomerStore, folder: Path, rng: random.Random) -> list[Callable[[int], bool]]:
    """Changes to apply at random; each returns False when the store leaves it nothing to change
    (fewer than two people to merge, nobody left to erase)."""

    def person() -> str | None:
        active = _active(store)
        return rng.choice(active) if active else None

    def new_records(step: int) -> bool:
        _new_people(store, folder, step)
        return True

    def merge(step: int) -> bool:
        active = _active(store)
        if len(active) < 2:
            return False
        a, b = rng.sample(active, 2)
        merge_profiles(store, ENGINEER, a, b, reason="test")
        return True

    def split(step: int) -> bool:
        several = [p for p in _active(store) if len(_records_of(store, p)) > 1]
        if several:
            split_record(store, ENGINEER, rng.choice(_records_of(store, rng.choice(several)))[0], reason="test")
        return True

    def rectify(step: int) -> bool:
        dob = f"19{rng.randint(30, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        who = person()
        if who is None:
            return False
        store.rectify(DSR, who, {"city": f"Rectified {step}", "date_of_birth": dob}, request_id=f"r-{step}")
        return True

    def erase(step: int) -> bool:
        who = person()
        if who is None:
            return False
        store.erase_subject(DSR, who)
        return True

    def shred(step: int) -> bool:
        who = person()
        if who is None:
            return False
        keys = [key for _, key in _records_of(store, who)]
        with store.engine.begin() as conn:
            store.shred_keys(conn, keys[:1])
        return True

    def consent(step: int) -> bool:
        for purpose in ("profiling", "personalisation", "marketing_sms"):
            status = rng.choice(["granted", "withdrawn"])
            who = person()
            if who is None:
                return False
            store.record_consent(OFFICER, who, purpose=purpose, status=status)
        return True

    def restrict(step: int) -> bool:
        who = person()
        if who is None:
            return False
        store.set_profile_status(OFFICER, who, "restricted")
        return True

    return [new_records, merge, split, rectify, erase, shred, consent, restrict]


def test_a_cache_read_back_in_chunks_gives_one_chunk_per_column(
    sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache's IPC may read back cut into chunks; the frame comes in one, or Polars re-cuts
    every column of the snapshot it is put beside at the next select (docs/benchmarks.md)."""
    store = sqlite_only
    _assert_same(store, PROFILING)
    original = arrow_ipc.read_ipc  # what the cache module imported
    cut: list[int] = []

    def in_chunks(source: bytes, columns: Sequence[str] | None = None) -> pl.DataFrame:
        whole = original(source, columns)
        half = whole.height // 2
        cut.append(whole.height)
        return pl.concat([whole.head(half), whole.tail(whole.height - half)], rechunk=False)

    monkeypatch.setattr(analytic_cache, "read_ipc", in_chunks)
    frame = _assert_same(store, PROFILING)
    assert cut  # the cache was read, cut in two
    assert frame.height > 1 and set(frame.n_chunks("all")) == {1}


def test_a_warm_read_decodes_only_the_columns_it_reads(
    sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to date, the cache is read without the columns only an update needs (the record and
    key to decrypt a date of birth with) nor the fields not asked for; the result is the same."""
    store = sqlite_only
    _assert_same(store, PROFILING)
    original = arrow_ipc.read_ipc  # what the cache module imported
    decoded: list[list[str] | None] = []

    def spy(source: bytes, columns: Sequence[str] | None = None) -> pl.DataFrame:
        decoded.append(list(columns) if columns is not None else None)
        return original(source, columns)

    monkeypatch.setattr(analytic_cache, "read_ipc", spy)
    _assert_same(store, PROFILING, ("city", "age_band"))
    assert decoded and decoded[-1] is not None
    assert set(decoded[-1]) == {"profile_id", "country", "city", "_dob", "_year"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cached_read_equals_the_row_path_under_changes(loaded: CustomerStore, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    changes = _changes(loaded, tmp_path, rng)
    sqlite = loaded.engine.dialect.name == "sqlite"
    for ctx in CONTEXTS:
        _assert_same(loaded, ctx)
    for step in range(10):
        change = rng.choice(changes)
        if not change(step):
            continue
        if sqlite and change.__name__ in ("new_records", "merge", "rectify", "restrict"):
            assert _golden(loaded) is not None and _dirty(loaded), change.__name__
        if sqlite and change.__name__ in ("erase", "shred"):
            assert _golden(loaded) is None and not _dirty(loaded), change.__name__
        for ctx in rng.sample(CONTEXTS, 3):
            _assert_same(loaded, ctx)
        # in id order, as the events' profile Enum (the audit lists its head, segments align on it)
        assert _assert_same(loaded, PROFILING)["profile_id"].is_sorted()
        if sqlite:
            cached = _golden(loaded)
            assert cached is not None and cached[1] == _with_records(loaded), change.__name__
            assert not _dirty(loaded)
    _assert_same(loaded, PROFILING, today=date(2031, 1, 1))  # another day: bands from the cached dates


def test_a_change_marks_its_profiles_and_only_they_are_read_again(
    sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_only
    _assert_same(store, PROFILING)
    cached = _golden(store)
    assert cached is not None and not _dirty(store)
    person = _active(store)[0]
    records = [record_id for record_id, _ in _records_of(store, person)]
    with store.engine.begin() as conn:  # matching touches updated_at: not an input of the frame
        conn.execute(update(t.profiles).where(t.profiles.c.id == person).values(updated_at=TODAY))
    assert _golden(store) == cached and not _dirty(store)
    with store.engine.begin() as conn:
        conn.execute(update(t.records).where(t.records.c.id.in_(records)).values(city="Elsewhere"))
    assert _dirty(store) == {person} and _golden(store) == cached

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a full read of the records")

    with monkeypatch.context() as patch:
        patch.setattr(frame_module, "_sqlite_rows", refuse)
        fast = _assert_same(store, PROFILING)
    assert fast.filter(pl.col("profile_id") == person)["city"].to_list() == ["Elsewhere"]
    assert fast["profile_id"].is_sorted()
    rebuilt = _golden(store)
    assert rebuilt is not None and rebuilt[:2] == cached[:2] and rebuilt[2] != cached[2] and not _dirty(store)
    with store.engine.begin() as conn:  # every profile out of date: rebuilt from one full read
        conn.execute(update(t.record_links).values(reason="test"))
    assert len(_dirty(store)) == _with_records(store)
    _assert_same(store, PROFILING)
    with store.engine.begin() as conn:
        conn.execute(update(t.profiles).where(t.profiles.c.id == person).values(status="restricted"))
    assert _dirty(store) == {person}
    assert person not in _assert_same(store, PROFILING)["profile_id"].to_list()
    with store.engine.begin() as conn:  # a record's links: the profiles it is linked to
        conn.execute(update(t.profiles).where(t.profiles.c.id == person).values(status="active"))
        conn.execute(t.golden_dirty.delete())
        conn.execute(update(t.records).where(t.records.c.id == records[0]).values(state="ZZ"))
    assert _dirty(store) == {person}
    _assert_same(store, PROFILING)


def test_any_shred_drops_the_cache_and_its_key(sqlite_only: CustomerStore) -> None:
    store = sqlite_only
    _assert_same(store, PROFILING)
    cached = _golden(store)
    assert cached is not None and store.keystore.get([cached[0]])
    key_id = _records_of(store, _active(store)[-1])[0][1]
    with store.engine.begin() as conn:
        store.shred_keys(conn, [key_id])
    assert _golden(store) is None and store.keystore.get([cached[0]]) == {}
    _assert_same(store, PROFILING)
    rebuilt = _golden(store)
    assert rebuilt is not None and rebuilt[0] != cached[0]


def test_retention_and_replay_destroy_the_cache(sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store = sqlite_only
    _assert_same(store, PROFILING)
    person = _active(store)[0]
    store.erase_subject(DSR, person)
    _assert_same(store, PROFILING)
    cached = _golden(store)
    assert cached is not None
    store.replay_erasures(OFFICER)  # after a restore: copies restored with the backup go again
    assert _golden(store) is None and store.keystore.get([cached[0]]) == {}
    _assert_same(store, PROFILING)
    cached = _golden(store)
    assert cached is not None
    monkeypatch.setitem(store.policy.policy.retention, "records:survey", 30)  # survey answers: 30 days
    later = datetime.now(UTC) + timedelta(days=31)
    deleted = {r["rule"]: r for r in store.apply_retention(OFFICER, dry_run=False, at=later)}
    assert any(r.startswith("records:") and v["deleted"] for r, v in deleted.items())
    assert _golden(store) is None and store.keystore.get([cached[0]]) == {} and not _dirty(store)
    _assert_same(store, PROFILING)


def test_other_rules_rebuild_the_cache(sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store = sqlite_only
    _assert_same(store, PROFILING, (*FIELDS, "postcode"))
    for rule in ("longest", "most_frequent", "most_trusted"):
        rules = dict.fromkeys(("city", "state", "country", "gender", "postcode", "date_of_birth"), rule)
        monkeypatch.setattr(store, "settings", dataclasses.replace(store.settings, survivorship=rules))
        _assert_same(store, PROFILING, (*FIELDS, "postcode"))
    monkeypatch.setattr(
        store,
        "settings",
        dataclasses.replace(store.settings, trusted_sources=tuple(reversed(store.settings.trusted_sources))),
    )
    _assert_same(store, PROFILING, (*FIELDS, "postcode"))


def test_a_later_day_decrypts_only_what_a_birth_year_no_longer_settles(
    sqlite_only: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_only
    _one_record_each(store)
    _assert_same(store, PROFILING)  # the birth-year cache is built
    with store.engine.begin() as conn:  # any change: the golden cache is rebuilt, now from birth years
        conn.execute(update(t.records).values(city=t.records.c.city))
    _assert_same(store, PROFILING)
    counts = _decryptions(monkeypatch)
    _assert_same(store, PROFILING)
    assert counts == []  # warm: nothing decrypted
    day = date(2025, 3, 1)  # 1990-04-05 is 34 or 35 in 2025: its year no longer settles the band
    _assert_same(store, PROFILING, today=day)
    assert len(counts) == 1 and counts[0] >= 1
    _assert_same(store, PROFILING, today=day)
    assert len(counts) == 1  # the decrypted dates were kept in the cache
    cached = _golden(store)
    assert cached is not None and cached[1] == _with_records(store)
